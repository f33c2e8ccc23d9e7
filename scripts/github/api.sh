# shellcheck shell=bash
# GitHub REST calls for the composite action's scripts, with curl and jq (both on GitHub's
# runners). Sourced by run.sh; nothing here runs on its own.
#
# The token goes to curl on stdin (a config file), never on a command line, and is never
# printed. Requests go only to GITHUB_API_URL (https; plain http only for a loopback test API).

api_base() {
  local base=${GITHUB_API_URL:-https://api.github.com}
  case "$base" in
    https://* | http://127.0.0.1:* | http://localhost:*) printf '%s' "${base%/}" ;;
    *) die "GITHUB_API_URL must be an https URL" ;;
  esac
}

# api PATH_AND_QUERY: GET one API resource, print its JSON body.
api() {
  local token=${GITHUB_TOKEN:-${GH_TOKEN:-}}
  [[ -n "$token" ]] || die "the GitHub API needs a token (the action's token input)"
  [[ "$token" != *[[:space:]\"\\]* ]] || die "the token is malformed"
  printf 'header = "Authorization: Bearer %s"\n' "$token" |
    curl --config - --fail --silent --show-error --proto =https,http --max-redirs 0 \
      --retry 3 --retry-delay 2 --max-time 30 \
      --header "Accept: application/vnd.github+json" \
      --header "X-GitHub-Api-Version: 2022-11-28" --user-agent "ephemera/action" \
      "$(api_base)/$1"
}

# open_prs: every open PR number of GITHUB_REPOSITORY, one per line (all pages).
open_prs() {
  local repo=${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is set by the runner}
  local page=1 body count
  while :; do
    body=$(api "repos/$repo/pulls?state=open&per_page=100&page=$page") || return 1
    count=$(jq 'length' <<<"$body") || return 1
    # Until an empty page: a server may cap per_page below what was asked.
    ((count > 0)) || return 0
    jq -r '.[].number' <<<"$body"
    ((page < 200)) || { echo "more than 20000 open PRs" >&2; return 1; }
    page=$((page + 1))
  done
}

# superseded PR SHA: prints why a run for commit SHA of PR is stale and succeeds, or fails
# when SHA is still the head of the open PR.
superseded() {
  local pr
  pr=$(api "repos/${GITHUB_REPOSITORY:?}/pulls/$1") || return 1
  if [[ $(jq -r '.state' <<<"$pr") != open ]]; then
    echo "the PR is closed"
    return 0
  fi
  local head
  head=$(jq -r '.head.sha' <<<"$pr")
  if [[ "$head" != "$2" ]]; then
    echo "the PR's head moved on from ${2:0:12} to ${head:0:12}"
    return 0
  fi
  return 1
}

output() {
  printf '%s=%s\n' "$1" "$2" >>"${GITHUB_OUTPUT:?GITHUB_OUTPUT is set by the runner}"
}

# check_pr: for a workflow_run build of commit INPUT_SHA from INPUT_HEAD_REPOSITORY's branch
# INPUT_BRANCH, finds the open PR and decides what its preview does. Outputs:
#   pr      the PR number ('' when no open PR has that branch)
#   state   preview     the PR is open at this commit and may have a preview
#           no-label    a fork or draft PR without the opt-in label: no preview (take it down)
#           superseded  the PR's head is a newer commit: a newer run will follow
#           closed      no open PR has this branch: pr-closed.yml tears down
#   reason  one line saying so
check_pr() {
  local repo=${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is set by the runner}
  local sha=${INPUT_SHA:-} head_repo=${INPUT_HEAD_REPOSITORY:-} branch=${INPUT_BRANCH:-}
  local label=${INPUT_LABEL:-preview}
  [[ -n "$sha" ]] || die "check needs sha (the built commit)"
  [[ "$head_repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "check needs head-repository as owner/name"
  [[ -n "$branch" ]] || die "check needs branch (the built branch)"
  [[ "$label" != *[[:cntrl:]]* ]] || die "label must be one line"
  local head query prs
  head=$(jq -rn --arg v "${head_repo%%/*}:$branch" '$v | @uri')
  query="repos/$repo/pulls?state=open&per_page=100&head=$head"
  prs=$(api "$query") || die "cannot list the pull requests of $repo"
  local pr
  pr=$(jq -c --arg r "$head_repo" '[.[] | select(.head.repo.full_name == $r)] | first // empty' <<<"$prs")
  if [[ -z "$pr" ]]; then
    output pr ""
    output state closed
    output reason "no open PR has this branch any more"
    echo "::notice title=ephemera::no open PR has this branch any more: no preview change"
    return 0
  fi
  local number now draft fork labelled
  number=$(jq -r '.number' <<<"$pr")
  now=$(jq -r '.head.sha' <<<"$pr")
  draft=$(jq -r '.draft // false' <<<"$pr")
  fork=$(jq -r --arg r "$repo" '.head.repo.full_name != $r' <<<"$pr")
  labelled=$(jq -r --arg l "$label" 'any(.labels[]?; .name == $l)' <<<"$pr")
  output pr "$number"
  if [[ "$now" != "$sha" ]]; then
    output state superseded
    output reason "the PR's head moved on from ${sha:0:12} to ${now:0:12}"
    echo "::notice title=ephemera::PR #$number moved on to ${now:0:12}: the run for ${sha:0:12} changes nothing"
  elif [[ ("$fork" == true || "$draft" == true) && "$labelled" != true ]]; then
    local what=draft
    [[ "$fork" != true ]] || what=fork
    output state no-label
    output reason "a $what PR gets a preview only with the label $label"
    echo "::notice title=ephemera::PR #$number is a $what PR without the label $label: no preview"
  else
    output state preview
    output reason "PR #$number is at ${sha:0:12}"
  fi
}
