#!/usr/bin/env bash
# The test command's closing line, from the log of `cargo test` and those of the end-to-end runs:
#   tests: N passed, M failed, K not run; end-to-end runs passed: E
# Exits 1 when a test failed or did not run: a run that skipped something did not pass.
#
# A test did not run when cargo lists it as ignored (`#[ignore = "NOT RUN: needs …"]` without
# --include-ignored), when it stopped with a panic `NOT RUN: …` (an ignored test run with
# --include-ignored where what it needs is missing: cargo counts it as failed, and its failure
# block, `---- <test> stdout ----`, says why), or when it printed a line `NOT RUN: <test>: <why>`
# and returned (cargo counts it as passed). Such tests are taken off the failed or passed ones
# and counted once, however many such lines they printed; each end-to-end log counts its own.
#
# Usage: scripts/test-summary.sh CARGO_TEST_LOG [E2E_LOG...]
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 CARGO_TEST_LOG [E2E_LOG...]" >&2; exit 2; }

awk '
    FILENAME == ARGV[1] && /^test result:/ { passed += $4; failed += $6; ignored += $8; block = "" }
    FILENAME == ARGV[1] && / \.\.\. ignored/ { print > "/dev/stderr" }
    # The failure blocks of a test binary: what a failed test printed, up to the next block.
    FILENAME == ARGV[1] && /^---- .* stdout ----$/ {
        block = $0
        sub(/^---- /, "", block)
        sub(/ stdout ----$/, "", block)
    }
    FILENAME == ARGV[1] && /^failures:$/ { block = "" }
    /^NOT RUN:/ {
        if (FILENAME == ARGV[1] && block != "") {
            name = block
        } else {
            name = substr($0, length("NOT RUN: ") + 1)
            sub(/: .*/, "", name)
        }
        if (!((FILENAME, name) in seen)) {
            seen[FILENAME, name] = 1
            if (FILENAME != ARGV[1]) e2e_not_run++
            else if (block != "") stopped_not_run++
            else printed_not_run++
            print > "/dev/stderr"
        }
    }
    FILENAME != ARGV[1] && /^==> e2e passed/ { e2e_passed++ }
    END {
        passed -= printed_not_run
        failed -= stopped_not_run
        if (passed < 0) passed = 0
        if (failed < 0) failed = 0
        not_run = ignored + printed_not_run + stopped_not_run + e2e_not_run
        printf "tests: %d passed, %d failed, %d not run; end-to-end runs passed: %d\n", \
            passed, failed, not_run, e2e_passed
        exit (failed + not_run > 0)
    }
' "$@"
