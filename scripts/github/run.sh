#!/usr/bin/env bash
# Runs one ephemera command for the composite action (action.yml).
#
# Inputs arrive as INPUT_* environment variables and each becomes exactly one argument: nothing
# here is ever evaluated, word-split or glob-expanded, so untrusted text stays data.
set -euo pipefail

die() {
  echo "::error title=ephemera::$*" >&2
  exit 2
}

cmd=${INPUT_COMMAND:-up}
case "$cmd" in
  up | deploy | down | gc | extend | promote | abort | status | list | plan) ;;
  *) die "command must be one of up, deploy, down, gc, extend, promote, abort, status, list, plan" ;;
esac

args=("$cmd")
[[ -z "${INPUT_ENV:-}" ]] || args+=(--env "$INPUT_ENV")
if [[ -n "${INPUT_PR:-}" ]]; then
  [[ "$INPUT_PR" =~ ^[1-9][0-9]{0,9}$ ]] || die "pr must be a PR number"
  args+=(--pr "$INPUT_PR")
fi
[[ -z "${INPUT_NAME:-}" ]] || args+=(--name "$INPUT_NAME")

case "${INPUT_GITHUB:-true}" in
  true | false) ;;
  *) die "github must be true or false" ;;
esac

case "$cmd" in
  up | deploy | plan)
    [[ -z "${INPUT_IMAGE:-}" ]] || args+=(--image "$INPUT_IMAGE")
    if [[ "$cmd" != deploy ]]; then
      [[ -z "${INPUT_BRANCH:-}" ]] || args+=(--branch "$INPUT_BRANCH")
      [[ -z "${INPUT_TITLE:-}" ]] || args+=(--title "$INPUT_TITLE")
    fi
    if [[ "$cmd" != plan ]]; then
      [[ -z "${INPUT_SHA:-}" ]] || args+=(--sha "$INPUT_SHA")
      [[ "${INPUT_GITHUB:-true}" != true ]] || args+=(--github)
    fi
    ;;
  down)
    [[ "${INPUT_GITHUB:-true}" != true ]] || args+=(--github)
    ;;
  extend)
    [[ -n "${INPUT_BY:-}" ]] || die "extend needs by, e.g. 24h"
    args+=(--by "$INPUT_BY")
    ;;
  gc)
    case "${INPUT_OPEN_PRS:-}" in
      "") ;;
      auto)
        command -v gh >/dev/null || die "open-prs: auto needs gh"
        list="${RUNNER_TEMP:-/tmp}/ephemera-open-prs.json"
        limit=5000
        gh pr list --repo "${GITHUB_REPOSITORY:?}" --state open --json number --limit "$limit" >"$list"
        # A truncated list would make gc delete the environments of open PRs past the limit.
        count=$(grep -o '"number"' "$list" | wc -l)
        if ((count >= limit)); then
          die "more than $limit open PRs: pass open-prs as a file listing all of them"
        fi
        args+=(--open-prs "$list")
        ;;
      *) args+=(--open-prs "$INPUT_OPEN_PRS") ;;
    esac
    ;;
esac

while IFS= read -r line; do
  [[ -z "$line" ]] || args+=("$line")
done <<<"${INPUT_ARGS:-}"

printf 'ephemera'
printf ' %q' "${args[@]}"
printf '\n'
exec ephemera "${args[@]}"
