#!/usr/bin/env bash
# GitHub Actions self-hosted runner hook: set in the runner's .env
#   ACTIONS_RUNNER_HOOK_JOB_COMPLETED=/path/to/scripts/hooks/github-job-completed.sh
# The runner gives the hook the finished job's GITHUB_* variables, so `ci-toolkit sweep`
# (no --job-id) removes exactly that job's containers, networks and volumes, even when the
# job was cancelled or its steps were SIGKILLed. Then orphans of dead owners on this host.
# Extra arguments (e.g. --label team=x) are passed to both sweeps.
set -u
toolkit="${CI_TOOLKIT:-ci-toolkit}"
status=0
"$toolkit" sweep "$@" || status=$?
"$toolkit" sweep --stale "$@" || status=$?
exit "$status"
