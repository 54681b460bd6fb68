# siyu — two commands from a fresh clone: `make run` and `make test`. Only python3.11 and make needed.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip -q --disable-pip-version-check

.PHONY: run test unit integration bench layer synth deploy clean screenshots

# The stamps make a second run skip installs; they depend on the requirement files they installed.
$(VENV)/.stamp-venv:
	@echo "Creating $(VENV) with $(PYTHON)…"
	$(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.stamp-local: $(VENV)/.stamp-venv requirements.txt requirements-local.txt
	@echo "Installing the local stack's pinned dependencies into $(VENV) (first run only, about two minutes)…"
	$(PIP) install -r requirements-local.txt
	@touch $@

$(VENV)/.stamp-test: $(VENV)/.stamp-local requirements-test.txt requirements-deploy.txt
	@echo "Installing the test and deploy dependencies into $(VENV) (first run only)…"
	$(PIP) install -r requirements-test.txt
	@touch $@

run: $(VENV)/.stamp-local          ## the whole stack on 127.0.0.1, seeded with a demo brand
	$(PY) -m siyu_dev run

# Test files run on TEST_WORKERS processes, each file whole on one (its module fixtures, its own local stack).
TEST_WORKERS ?= 2

test: $(VENV)/.stamp-test          ## every test: unit (pure), integration (local stack, simulator, CDK synth), Lambda smoke
	@bash .ci/browser-deps            # Debian's chromium + chromedriver + CJK fonts for the console's browser tests
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests/unit tests/integration tests/e2e tests/lambda_smoke

# The README's screenshots (docs/*.png) are committed; a test run writes its own under build/screenshots/ only.
screenshots: $(VENV)/.stamp-test   ## refresh docs/till.png, docs/dashboard.png, docs/guide.png from the browser tests
	@bash .ci/browser-deps
	SIYU_SCREENSHOTS=docs $(PY) -m pytest -q -p no:xdist \
		tests/integration/test_console_browser.py::test_till_looks_up_redeems_refuses_the_second_and_reverses \
		tests/integration/test_console_browser.py::test_the_scoreboard_shows_what_the_stats_api_returns \
		tests/integration/test_console_guides_browser.py::test_a_guide_signs_in_sees_only_their_own_and_tags_a_member

unit: $(VENV)/.stamp-test
	$(PY) -m pytest -q tests/unit

integration: $(VENV)/.stamp-test
	$(PY) -m pytest -q tests/integration tests/e2e

# The bench's reference SDKs (wechatpy) are installed for the bench only: `make test` never sees them.
$(VENV)/.stamp-bench: $(VENV)/.stamp-test requirements-bench.txt
	$(PIP) install -r requirements-bench.txt
	@touch $@

bench: $(VENV)/.stamp-bench        ## figures for the README
	$(PY) -m bench

layer: $(VENV)/.stamp-test         ## Lambda layer with the pinned runtime dependencies (arm64, py3.11)
	bash infra/build_layer.sh

# CDK context values for synth/deploy, e.g. CONTEXT="-c stage=prod -c region=cn-north-1 -c alarm_email=ops@brand.cn"
# (infra/README.md lists them all).
CONTEXT ?=
CDK     ?= npx --yes aws-cdk@2

synth: layer                       ## the CloudFormation template -> infra/cdk.out (offline: no account, no Docker)
	cd infra && ../$(PY) app.py $(CONTEXT)

deploy: layer                      ## cdk deploy: needs Node.js >= 22 (npx), AWS credentials, `cdk bootstrap` once
	cd infra && $(CDK) deploy --require-approval broadening $(CONTEXT)

clean:
	rm -rf $(VENV) build infra/cdk.out .siyu-local
