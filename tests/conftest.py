import os

from hypothesis import settings

pytest_plugins = ["tests.support.kafka_fixtures", "tests.support.alertmanager"]

# CI runs the property tests with a fixed seed, so a run's result is reproducible; the
# random exploration happens on developers' machines, where a failure is a finding.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")
