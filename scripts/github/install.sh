#!/usr/bin/env bash
# Installs ephemera for the composite action (action.yml) and puts it on the job's PATH.
#
#   EPHEMERA_VERSION  a release tag (v1.2.3), 'latest', 'source', or '' for the tag the action
#                     was referenced at (GITHUB_ACTION_REF), else latest
#   GH_TOKEN          token for gh (release downloads)
#
# Releases carry one archive per target, ephemera-<tag>-<target>.tar.gz, holding the binary
# `ephemera`, and a SHA256SUMS file; the archive is verified against it before it is unpacked.
# 'source' builds the action's own checkout with cargo (the runner needs a Rust toolchain).
set -euo pipefail

die() {
  echo "::error title=ephemera install::$*" >&2
  exit 1
}

action_path=${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is set by the runner}
dest="${RUNNER_TEMP:?RUNNER_TEMP is set by the runner}/ephemera-bin"
mkdir -p "$dest"

version=${EPHEMERA_VERSION:-}
if [[ -z "$version" ]]; then
  ref=${GITHUB_ACTION_REF:-}
  if [[ "$ref" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-.+][0-9A-Za-z.-]+)?$ ]]; then
    version=$ref
  else
    version=latest
  fi
fi

if [[ "$version" == source ]]; then
  command -v cargo >/dev/null || die "version: source needs cargo on the runner (install a Rust toolchain first)"
  echo "Building ephemera from $action_path"
  cargo install --locked --quiet --path "$action_path" --root "$dest" --bin ephemera
  echo "$dest/bin" >>"$GITHUB_PATH"
  "$dest/bin/ephemera" --version
  exit 0
fi

if [[ "$version" != latest && ! "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-.+][0-9A-Za-z.-]+)?$ ]]; then
  die "version must be a release tag such as v1.2.3, 'latest' or 'source'"
fi

case "${RUNNER_OS:-}/${RUNNER_ARCH:-}" in
  Linux/X64) target=x86_64-unknown-linux-gnu ;;
  Linux/ARM64) target=aarch64-unknown-linux-gnu ;;
  macOS/X64) target=x86_64-apple-darwin ;;
  macOS/ARM64) target=aarch64-apple-darwin ;;
  *) die "no ephemera release for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}; use version: source" ;;
esac

# The releases of the repository the action comes from (the calling repository for `uses: ./`).
repo=${GITHUB_ACTION_REPOSITORY:-}
[[ -n "$repo" ]] || repo=${GITHUB_REPOSITORY:?}
command -v gh >/dev/null || die "gh is needed to download releases; use version: source"

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

tar -xzf "$work/$asset" -C "$work"
bin=$(find "$work" -type f -name ephemera -perm -u+x | head -n 1)
[[ -n "$bin" ]] || die "$asset holds no executable named ephemera"
install -m 0755 "$bin" "$dest/ephemera"
echo "$dest" >>"$GITHUB_PATH"
"$dest/ephemera" --version
