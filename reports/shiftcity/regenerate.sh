#!/usr/bin/env bash
# Regenerate every committed ShiftCity (v1) result from scratch and its report:
# bash reports/shiftcity/regenerate.sh [cda-sweep arguments, e.g. --dry-run]   (JOBS=2: two trainings at a time).
# The steps and what they keep: reports/regenerate.sh.
exec bash "$(dirname "$0")/../regenerate.sh" shiftcity "$@"
