#!/usr/bin/env bash
# The test command's closing line, from the log of `cargo test` and those of the end-to-end runs:
#   tests: N passed, M failed, K not run; end-to-end runs passed: E
# Exits 1 when a test failed or did not run: a run that skipped something did not pass.
#
# A test did not run when cargo lists it as ignored (`#[ignore = "NOT RUN: needs …"]` without
# --include-ignored), or when it printed a line `NOT RUN: <test>: <why>` and returned, which
# cargo counts as passed: such tests are taken off the passed ones. A test counts once however
# many such lines it printed; each end-to-end log counts its own.
#
# Usage: scripts/test-summary.sh CARGO_TEST_LOG [E2E_LOG...]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CARGO_TEST_LOG [E2E_LOG...]" >&2; exit 2; }

awk '
    FILENAME == ARGV[1] && /^test result:/ { passed += $4; failed += $6; ignored += $8 }
    FILENAME == ARGV[1] && / \.\.\. ignored/ { print > "/dev/stderr" }
    /^NOT RUN:/ {
        name = substr($0, length("NOT RUN: ") + 1)
        sub(/: .*/, "", name)
        if (!((FILENAME, name) in seen)) {
            seen[FILENAME, name] = 1
            if (FILENAME == ARGV[1]) printed_not_run++; else e2e_not_run++
            print > "/dev/stderr"
        }
    }
    FILENAME != ARGV[1] && /^==> e2e passed/ { e2e_passed++ }
    END {
        passed -= printed_not_run
        if (passed < 0) passed = 0
        not_run = ignored + printed_not_run + e2e_not_run
        printf "tests: %d passed, %d failed, %d not run; end-to-end runs passed: %d\n", \
            passed, failed, not_run, e2e_passed
        exit (failed + not_run > 0)
    }
' "$@"
