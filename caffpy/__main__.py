import sys

from caffpy.cli import main

sys.exit(main())
