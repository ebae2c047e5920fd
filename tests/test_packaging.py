"""debian/ must agree with the rest of the tree (skipped in the package build,
which runs the tests without debian/)."""

import os
import re

import pytest
from debian import deb822

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "debian/control")),
                                reason="not run from a source tree with debian/")


def make_variable(name):
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as handle:
        text = handle.read().replace("\\\n", " ")
    return re.search(r"^%s :=(.*)$" % name, text, re.M).group(1).split()


def test_build_depends_cover_the_test_dependencies():
    """The build runs the tests: everything `make deps` installs for them is needed there too."""
    with open(os.path.join(ROOT, "debian/control"), encoding="utf-8") as handle:
        source = next(deb822.Deb822.iter_paragraphs(handle))
    build_depends = {alt[0]["name"] for alt in
                     deb822.PkgRelation.parse_relations(source["Build-Depends"])}
    missing = set(make_variable("TEST_DEPS")) - build_depends
    assert not missing, "add to Build-Depends in debian/control: %s" % ", ".join(sorted(missing))


@pytest.mark.parametrize("listing", ["caffpy.install", "caffpy.manpages", "caffpy.docs"])
def test_files_the_package_installs_exist(listing):
    with open(os.path.join(ROOT, "debian", listing), encoding="utf-8") as handle:
        sources = [line.split()[0] for line in handle if line.strip()]
    for source in sources:
        assert os.path.exists(os.path.join(ROOT, source)), source
