# Everything runs on Debian's own Python: the python3 first on PATH may be another one.
PYTHON := /usr/bin/python3
export PATH := /usr/sbin:/usr/bin:/sbin:/bin

# Debian packages the tests need.
TEST_DEPS := gnupg python3-gnupg python3-debian python3-configobj python3-pytest \
             python3-hypothesis python3-aiosmtpd python3-cryptography
# ... and those that building, linting and checking the .deb need. Installed
# without Recommends, which would add some 150 packages the build never uses.
BUILD_DEPS := debhelper dh-python python3-all python3-setuptools lintian devscripts \
              fakeroot git man-db

# A shell test: true when every package in $(1) is installed.
installed = [ "$$(dpkg-query -W -f='$${Status}\n' $(1) 2>/dev/null | grep -c '^install ok installed$$')" -eq "$(words $(1))" ]

.PHONY: demo check test deps docs deb lint deb-check bench mta-matrix

# A generated party, certified and "mailed" into an mbox (no MTA needed).
demo:
	$(PYTHON) -m caffpy.demo

deps:
	@if $(call installed,$(TEST_DEPS) $(BUILD_DEPS)); then \
	    echo "test and build dependencies present"; \
	else \
	    apt-get update -qq \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_DEPS) \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BUILD_DEPS); \
	fi

# All tests, after installing what they need; then the .deb, installed and run, and lintian.
check: deps test deb-check lint

test:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests

# (root) The whole pipeline through exim4, postfix, msmtp-mta and nullmailer, each
# relaying to an SMTP sink on 127.0.0.1, plus their broken setups; the MTA that was
# installed before is put back. `make test` runs these too.
mta-matrix: deps
	$(PYTHON) -m pytest -q -p no:cacheprovider -m mta tests/test_mta.py

# Generated parties of 10, 50, 100, 200 and 500 keys and a flooded key; prints the
# figures next to a one-process-per-operation baseline, JSON in bench-results/.
bench: deps
	$(PYTHON) bench/bench.py

# Regenerate /etc/caffrc, the man pages and the bash completion from the code
# (commit the result; tests/test_docs.py fails while they are out of date).
docs:
	$(PYTHON) -m caffpy.docgen .

# Source and binary packages, built in a copy of the tree holding only what git
# tracks or would track (no caches, no earlier build), as from a fresh clone.
# Results: build-deb/caffpy_*_all.deb, .dsc, .tar.xz, .buildinfo and .changes.
# (A full build rather than -b, so that lintian also checks the source package.)
deb:
	rm -rf build-deb
	mkdir -p build-deb/caffpy
	git ls-files -z --cached --others --exclude-standard \
	    | tar --null -T - --ignore-failed-read -cf - | tar -xf - -C build-deb/caffpy
	cd build-deb/caffpy && dpkg-buildpackage -us -uc
	@ls -l build-deb/*.deb

# lintian on what `make deb` built; any tag at all fails. (Not --fail-on info:
# lintian 2.116 then also fails on tags its own screens mask, which it never shows.)
lint:
	@ls build-deb/caffpy_*.changes >/dev/null 2>&1 || $(MAKE) deb
	@lintian --pedantic -I -E build-deb/caffpy_*.changes > build-deb/lintian.log 2>&1; \
	    status=$$?; cat build-deb/lintian.log; \
	    if [ $$status != 0 ] || grep -Eq '^[EWIPX]: ' build-deb/lintian.log; then \
	        echo "lint: lintian reported tags or failed (status $$status)"; exit 1; \
	    fi; \
	    echo "lint: no lintian tags"

# Install the .deb with apt-get, run the installed caffpy on a small party, and
# remove it with everything it pulled in (as root; see .ci/deb-check).
deb-check: deb
	sh .ci/deb-check
