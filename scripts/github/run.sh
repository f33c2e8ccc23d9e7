#!/usr/bin/env bash
# Runs one command for the composite action (action.yml).
#
# Inputs arrive as INPUT_* environment variables and each becomes exactly one argument: nothing
# here is ever evaluated, word-split or glob-expanded, so untrusted text stays data. Each
# ephemera subcommand gets only the flags it accepts (see `ephemera <command> --help`).
#
# `check` is not an ephemera command: it asks the GitHub API which open PR a `workflow_run` build
# was for and whether that PR gets a preview (see docs/github.md, "The preview gate").
set -euo pipefail

die() {
  echo "::error title=ephemera::$*" >&2
  exit 2
}

# shellcheck source=scripts/github/api.sh
. "$(dirname "${BASH_SOURCE[0]}")/api.sh"

cmd=${INPUT_COMMAND:-up}
case "$cmd" in
  up | deploy | down | gc | extend | promote | abort | status | list | plan | notify | release | check) ;;
  *) die "command must be one of up, deploy, down, gc, extend, promote, abort, status, list, plan, notify, release, check" ;;
esac

case "${INPUT_GITHUB:-true}" in
  true | false) ;;
  *) die "github must be true or false" ;;
esac
github=${INPUT_GITHUB:-true}

if [[ -n "${INPUT_PR:-}" && ! "$INPUT_PR" =~ ^[1-9][0-9]{0,9}$ ]]; then
  die "pr must be a PR number"
fi
if [[ -n "${INPUT_SHA:-}" && ! "$INPUT_SHA" =~ ^[0-9a-f]{40}$ ]]; then
  die "sha must be a full commit SHA (40 lower-case hex digits)"
fi

if [[ "$cmd" == check ]]; then
  check_pr
  exit 0
fi

args=("$cmd")
[[ -z "${INPUT_ENV:-}" ]] || args+=(--env "$INPUT_ENV")

# The environment: --pr or --name, for the commands that act on one environment.
case "$cmd" in
  list | gc | release) ;;
  *)
    [[ -z "${INPUT_PR:-}" ]] || args+=(--pr "$INPUT_PR")
    [[ -z "${INPUT_NAME:-}" ]] || args+=(--name "$INPUT_NAME")
    ;;
esac

case "$cmd" in
  up | plan)
    [[ -z "${INPUT_IMAGE:-}" ]] || args+=(--image "$INPUT_IMAGE")
    [[ -z "${INPUT_BRANCH:-}" ]] || args+=(--branch "$INPUT_BRANCH")
    [[ -z "${INPUT_TITLE:-}" ]] || args+=(--title "$INPUT_TITLE")
    if [[ "$cmd" == up ]]; then
      [[ -z "${INPUT_SHA:-}" ]] || args+=(--sha "$INPUT_SHA")
      [[ "$github" != true ]] || args+=(--github)
    fi
    ;;
  deploy)
    [[ -z "${INPUT_IMAGE:-}" ]] || args+=(--image "$INPUT_IMAGE")
    ;;
  release)
    [[ -n "${INPUT_IMAGE:-}" ]] || die "release needs image"
    args+=(--image "$INPUT_IMAGE")
    [[ -z "${INPUT_SHA:-}" ]] || args+=(--source-commit "$INPUT_SHA")
    ;;
  down)
    [[ "$github" != true ]] || args+=(--github)
    ;;
  extend)
    [[ -n "${INPUT_BY:-}" ]] || die "extend needs by, e.g. 24h"
    args+=(--by "$INPUT_BY")
    ;;
  notify)
    case "${INPUT_OUTCOME:-}" in
      success | failure) ;;
      *) die "notify needs outcome: success or failure" ;;
    esac
    [[ -n "${INPUT_MESSAGE:-}" ]] || die "notify needs a message"
    args+=(--outcome "$INPUT_OUTCOME" --message "$INPUT_MESSAGE")
    [[ -z "${INPUT_SHA:-}" ]] || args+=(--sha "$INPUT_SHA")
    # GitHub reporting of a failure needs the PR.
    [[ "$github" != true || -z "${INPUT_PR:-}" ]] || args+=(--github)
    ;;
  gc)
    case "${INPUT_OPEN_PRS:-}" in
      "") ;;
      auto)
        list="${RUNNER_TEMP:?RUNNER_TEMP is set by the runner}/ephemera-open-prs.txt"
        open_prs >"$list" || die "cannot list the open PRs of ${GITHUB_REPOSITORY:-the repository}"
        args+=(--open-prs "$list")
        ;;
      *) args+=(--open-prs "$INPUT_OPEN_PRS") ;;
    esac
    [[ "$github" != true ]] || args+=(--github)
    ;;
esac

while IFS= read -r line; do
  [[ -z "$line" ]] || args+=("$line")
done <<<"${INPUT_ARGS:-}"

printf 'ephemera'
printf ' %q' "${args[@]}"
printf '\n'
status=0
ephemera "${args[@]}" || status=$?

# Exit 4: `up` gave way to another run that holds or took the environment (a newer push's run,
# or a teardown) and changed nothing; it has already reported that to the PR's Deployment as
# inactive, not as a failure. Not a failure here either: a notice, and the step ends green.
if ((status == 4)) && [[ "$cmd" == up ]]; then
  why="another run holds its preview"
  if [[ -n "${INPUT_PR:-}" && -n "${INPUT_SHA:-}" && -n "${GITHUB_TOKEN:-${GH_TOKEN:-}}" ]] &&
    moved=$(superseded "$INPUT_PR" "$INPUT_SHA"); then
    why=$moved
  fi
  echo "::notice title=ephemera::${INPUT_PR:+PR #$INPUT_PR: }superseded, $why; this run stops here"
  [[ -z "${GITHUB_OUTPUT:-}" ]] || echo "superseded=true" >>"$GITHUB_OUTPUT"
  exit 0
fi
exit "$status"
