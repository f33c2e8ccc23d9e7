#!/usr/bin/env bash
# Installs ephemera for the composite action (action.yml) and puts it on the job's PATH.
#
#   EPHEMERA_VERSION  a release tag (v1.2.3), 'latest', 'source', or '' (the default): exactly
#                     the release the action is pinned to, see below
#   EPHEMERA_VERIFY_ATTESTATION
#                     auto (default): verify the archive's GitHub artifact attestation when gh
#                     has `gh attestation`; true: require it; false: skip it
#   GH_TOKEN          token for gh (release downloads, tag look-ups, attestations)
#
# Which release, with EPHEMERA_VERSION empty: the ref the action was used at. The runner sets
# GITHUB_ACTION_REF, but it can be empty inside a composite action's steps (actions/runner#2473),
# so the ref is also read from where the runner unpacked the action
# (.../_actions/<owner>/<repo>/<ref>), and for a local action (`uses: ./`) from the checkout's git.
#   - a release tag v1.2.3: that release;
#   - a commit SHA, or a moving tag such as v1: the release whose v1.2.3 tag names that commit;
#     none is an error (pin a release, or use version: source);
#   - anything else (a branch): an error.
#
# Releases carry one archive per target, ephemera-<tag>-<target>.tar.gz, and SHA256SUMS (made by
# scripts/release, see scripts/github/release.yml). The archive is checked against its line of
# SHA256SUMS, then its attestation, before it is unpacked.
# 'source' builds the action's own checkout with cargo (the runner needs a Rust toolchain).
set -euo pipefail

die() {
  echo "::error title=ephemera install::$*" >&2
  exit 1
}

release_tag='^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$'

action_path=${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is set by the runner}
dest="${RUNNER_TEMP:?RUNNER_TEMP is set by the runner}/ephemera-bin"
mkdir -p "$dest"

# The releases of the repository the action comes from (the calling repository for `uses: ./`).
repo=${GITHUB_ACTION_REPOSITORY:-}
ref=${GITHUB_ACTION_REF:-}
if [[ -z "$ref" || -z "$repo" ]]; then
  # .../_actions/<owner>/<repo>/<ref>: where the runner unpacks a repository's action.
  parent=$(dirname "$action_path")
  if [[ "$(basename "$(dirname "$(dirname "$parent")")")" == _actions ]]; then
    [[ -n "$ref" ]] || ref=$(basename "$action_path")
    [[ -n "$repo" ]] || repo="$(basename "$(dirname "$parent")")/$(basename "$parent")"
  elif git -C "$action_path" rev-parse --git-dir >/dev/null 2>&1; then
    [[ -n "$ref" ]] || ref=$(git -C "$action_path" describe --tags --exact-match --match 'v*.*.*' HEAD 2>/dev/null ||
      git -C "$action_path" rev-parse HEAD)
  fi
fi
[[ -n "$repo" ]] || repo=${GITHUB_REPOSITORY:?}

version=${EPHEMERA_VERSION:-}
if [[ "$version" == source ]]; then
  command -v cargo >/dev/null || die "version: source needs cargo on the runner (install a Rust toolchain first)"
  echo "Building ephemera from $action_path"
  cargo install --locked --quiet --path "$action_path" --root "$dest" --bin ephemera
  echo "$dest/bin" >>"$GITHUB_PATH"
  "$dest/bin/ephemera" --version
  exit 0
fi

command -v gh >/dev/null || die "gh is needed to download releases; use version: source"

# The release tag at commit $1: a vX.Y.Z tag of $repo that names it.
tag_at() {
  gh api --paginate "repos/$repo/tags?per_page=100" --jq ".[] | select(.commit.sha == \"$1\") | .name" |
    grep -E "$release_tag" | sort -V | tail -n 1
}

if [[ -z "$version" ]]; then
  if [[ "$ref" =~ $release_tag ]]; then
    version=$ref
  elif [[ "$ref" =~ ^[0-9a-f]{40}$ ]]; then
    version=$(tag_at "$ref") || true
    [[ -n "$version" ]] ||
      die "commit $ref of $repo has no release; pin the action to a release tag (or its commit), or set version: source"
  elif [[ "$ref" =~ ^v[0-9]+(\.[0-9]+)?$ ]]; then
    commit=$(gh api "repos/$repo/commits/$ref" --jq .sha) || die "cannot resolve $ref of $repo"
    version=$(tag_at "$commit") || true
    [[ -n "$version" ]] || die "$ref of $repo ($commit) is no release; pin a release tag, or set version: source"
  elif [[ -z "$ref" ]]; then
    die "cannot tell which ref the action was used at; set version to a release tag"
  else
    die "the action is used at '$ref', which is no release tag or commit; pin a release (tag or commit SHA), or set version: source"
  fi
  echo "ephemera: the action is pinned to $ref: installing release $version"
elif [[ "$version" != latest && ! "$version" =~ $release_tag ]]; then
  die "version must be a release tag such as v1.2.3, 'latest' or 'source'"
fi

case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
  Linux/X64) target=x86_64-unknown-linux-gnu ;;
  Linux/ARM64) target=aarch64-unknown-linux-gnu ;;
  macOS/X64) target=x86_64-apple-darwin ;;
  macOS/ARM64) target=aarch64-apple-darwin ;;
  *) die "no ephemera release for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}; use version: source" ;;
esac

if [[ "$version" == latest ]]; then
  version=$(gh release view --repo "$repo" --json tagName --jq .tagName) ||
    die "cannot find the latest release of $repo"
fi

asset="ephemera-$version-$target.tar.gz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gh release download "$version" --repo "$repo" --dir "$work" --pattern "$asset" --pattern SHA256SUMS ||
  die "cannot download $asset and SHA256SUMS from release $version of $repo"

# Exactly the archive's line of SHA256SUMS, checked with whichever tool the runner has.
line=$(awk -v f="$asset" '$2 == f || $2 == "*" f { print $1 "  " f }' "$work/SHA256SUMS")
[[ -n "$line" ]] || die "SHA256SUMS of $version has no line for $asset"
if command -v sha256sum >/dev/null; then
  (cd "$work" && printf '%s\n' "$line" | sha256sum --check --strict --quiet -) || die "checksum mismatch for $asset"
else
  (cd "$work" && printf '%s\n' "$line" | shasum -a 256 --check --strict --quiet -) || die "checksum mismatch for $asset"
fi
echo "ephemera: $asset matches SHA256SUMS"

# The attestation release.yml made: the archive was built by this repository's workflow.
case "${EPHEMERA_VERIFY_ATTESTATION:-auto}" in
  false) echo "ephemera: attestation not checked (verify-attestation: false)" ;;
  auto | true)
    if gh attestation verify --help >/dev/null 2>&1; then
      gh attestation verify "$work/$asset" --repo "$repo" >&2 ||
        die "the attestation of $asset does not verify for $repo"
      echo "ephemera: $asset attestation verified"
    elif [[ "${EPHEMERA_VERIFY_ATTESTATION:-auto}" == true ]]; then
      die "verify-attestation: true, but this gh has no 'gh attestation' (gh 2.49 or later has it)"
    else
      echo "::notice title=ephemera install::this gh has no 'gh attestation'; the attestation of $asset was not checked"
    fi
    ;;
  *) die "verify-attestation must be auto, true or false" ;;
esac

tar -xzf "$work/$asset" -C "$work"
bin="$work/ephemera-$version-$target/ephemera"
[[ -f "$bin" && -x "$bin" ]] || die "$asset holds no executable ephemera-$version-$target/ephemera"
install -m 0755 "$bin" "$dest/ephemera"
echo "$dest" >>"$GITHUB_PATH"
"$dest/ephemera" --version
