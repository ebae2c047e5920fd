# Everything runs on Debian's own Python: the python3 first on PATH may be another one.
PYTHON := /usr/bin/python3
export PATH := /usr/sbin:/usr/bin:/sbin:/bin

# Debian packages the tests need.
TEST_DEPS := gnupg python3-gnupg python3-debian python3-configobj python3-pytest \
             python3-hypothesis python3-aiosmtpd

.PHONY: demo check test deps

# A generated party, certified and "mailed" into an mbox (no MTA needed).
demo:
	$(PYTHON) -m caffpy.demo

deps:
	@if ! dpkg-query -W -f='$${Status}\n' $(TEST_DEPS) 2>/dev/null | grep -vq '^install ok installed$$' \
	    && [ "$$(dpkg-query -W -f='$${Status}\n' $(TEST_DEPS) 2>/dev/null | wc -l)" -eq "$(words $(TEST_DEPS))" ]; then \
	    echo "test dependencies present"; \
	else \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_DEPS); \
	fi

# All tests, after installing what they need.
check: deps test

test:
	$(PYTHON) -m pytest -q -p no:cacheprovider tests
