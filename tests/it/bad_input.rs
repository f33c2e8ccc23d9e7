//! Bad input, through the real binary: each case exits 2 with one line on stderr that names the
//! place (file:line:col and field, or the flag), prints nothing on stdout, and never panics.

use std::path::Path;

use crate::common::cli::{ephemera, stderr, stdout};

const IMAGE: &str = "ghcr.io/acme/cats:sha-1234";

/// A valid environment; cases edit it.
const BASE: &str = "\
apiVersion: ephemera.dev/v1alpha1
kind: Environment
metadata:
  name: t
provider:
  local:
    nodes: 1
addons:
  argoCd:
    enabled: false
app:
  name: cats
  replicas: 1
  canary:
    steps:
    - setWeight: 20
    - pause:
        duration: 30s
    - setWeight: 100
tls:
  issuer: selfsigned
ttl: 2h
";

/// The shipped AKS environment; cases edit it too.
const AKS: &str = include_str!("../../environments/pr-aks.yaml");

enum Input {
    /// The base file with `from` replaced by `to`.
    Edit(&'static str, &'static str),
    /// A file with exactly this text.
    File(&'static str),
    /// The shipped `environments/pr-aks.yaml` with `from` replaced by `to`.
    AksEdit(&'static str, &'static str),
    /// The base file, plus these arguments instead of `--pr 7`.
    Args(&'static [&'static str]),
}

struct Case {
    name: &'static str,
    input: Input,
    /// Must appear in the error line.
    expect: &'static str,
}

const fn case(name: &'static str, input: Input, expect: &'static str) -> Case {
    Case {
        name,
        input,
        expect,
    }
}

use Input::*;

fn cases() -> Vec<Case> {
    vec![
        case(
            "unknown field",
            Edit("  replicas: 1\n", "  replicas: 1\n  colour: blue\n"),
            ":14:3: app.colour: unknown field `colour`",
        ),
        case(
            "wrong type",
            Edit("replicas: 1", "replicas: two"),
            ":13:13: app.replicas: \"two\" is not a whole number from 0 to 4294967295",
        ),
        case(
            "pr zero",
            Args(&["--pr", "0"]),
            "--pr: \"0\" is not a pull request number",
        ),
        case(
            "pr negative",
            Args(&["--pr", "-1"]),
            "--pr: \"-1\" is not a pull request number",
        ),
        case(
            "pr not a number",
            Args(&["--pr", "abc"]),
            "--pr: \"abc\" is not a pull request number",
        ),
        case(
            "name of 80 characters",
            Args(&[
                "--name",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            ]),
            "--name: environment name is 80 characters; at most 40",
        ),
        case(
            "name with underscore",
            Args(&["--name", "my_env"]),
            "--name: \"my_env\" is not a DNS-1123 label",
        ),
        case(
            "image with a newline",
            Args(&["--pr", "7", "--image", "ghcr.io/acme/cats:sha\n-1234"]),
            "--image: \"ghcr.io/acme/cats:sha\\n-1234\" is not an image reference",
        ),
        case(
            "image with upper case",
            Args(&["--pr", "7", "--image", "ghcr.io/Acme/cats:1"]),
            "--image: \"ghcr.io/Acme/cats:1\" is not an image reference",
        ),
        case(
            "no image anywhere",
            Args(&["--pr", "7", "--image-from-file-only"]),
            "--image: no image",
        ),
        case(
            "branch with control characters",
            Args(&["--pr", "7", "--branch", "main\u{1b}[31m"]),
            "--branch: ",
        ),
        case(
            "overlong repository",
            Args(&[
                "--pr",
                "7",
                "--repository",
                "acme/ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
            ]),
            "--repository: longer than 256 characters",
        ),
        case(
            "bad --now",
            Args(&["--pr", "7", "--now", "yesterday"]),
            "--now: \"yesterday\" is not an RFC 3339 time",
        ),
        case(
            "--ttl out of range",
            Args(&["--pr", "7", "--ttl", "90d"]),
            "--ttl: \"90d\" is outside 10m..30d",
        ),
        case(
            "bad apiVersion",
            Edit("ephemera.dev/v1alpha1", "ephemera.dev/v2"),
            ":1:1: apiVersion: \"ephemera.dev/v2\" is not supported",
        ),
        case(
            "bad kind",
            Edit("kind: Environment", "kind: Deployment"),
            ":2:1: kind: \"Deployment\" is not supported; expected Environment",
        ),
        case(
            "setWeight 0",
            Edit("setWeight: 20", "setWeight: 0"),
            ":16:7: app.canary.steps[0].setWeight: must be 1..100",
        ),
        case(
            "setWeight 101",
            Edit("setWeight: 20", "setWeight: 101"),
            ":16:7: app.canary.steps[0].setWeight: must be 1..100",
        ),
        case(
            "last weight not 100",
            Edit("setWeight: 100", "setWeight: 60"),
            ":19:7: app.canary.steps[2].setWeight: the last setWeight is 60",
        ),
        case(
            "bad ttl",
            Edit("ttl: 2h", "ttl: forever"),
            ":22:1: ttl: \"forever\" is not a duration",
        ),
        case(
            "bad pause duration",
            Edit("duration: 30s", "duration: soon"),
            ":18:9: app.canary.steps[1].pause.duration: \"soon\" is not a duration",
        ),
        case(
            "missing env file",
            Args(&[
                "--pr",
                "7",
                "--env-file",
                "environments/does-not-exist.yaml",
            ]),
            "environments/does-not-exist.yaml: no such file",
        ),
        case(
            "not YAML",
            File("apiVersion: ephemera.dev/v1alpha1\nkind: [Environment\n"),
            ".yaml:",
        ),
        case(
            "empty file",
            File("\n# nothing here\n"),
            ".yaml: the file is empty",
        ),
        case(
            "a list, not a mapping",
            File("- a\n- b\n"),
            ".yaml:1:1: expected a mapping with apiVersion",
        ),
        case(
            "two documents",
            File("apiVersion: ephemera.dev/v1alpha1\n---\nkind: Environment\n"),
            ".yaml:",
        ),
        case(
            "slack webhook inline",
            Edit(
                "ttl: 2h\n",
                "ttl: 2h\nnotifications:\n  slack:\n    webhookEnv: https://hooks.slack.com/services/T000/B000/SECRET\n",
            ),
            ":25:5: notifications.slack.webhookEnv: holds a URL",
        ),
        case(
            "port out of range",
            Edit("  replicas: 1\n", "  replicas: 1\n  port: 70000\n"),
            ":14:9: app.port: \"70000\" is not a whole number from 0 to 65535",
        ),
        case(
            "not a boolean",
            Edit("    enabled: false\n", "    enabled: maybe\n"),
            ":10:14: addons.argoCd.enabled: \"maybe\" is not true or false",
        ),
        case(
            "unknown provider",
            Edit("  local:\n    nodes: 1\n", "  gke: {}\n"),
            ":6:3: provider: unknown variant `gke`",
        ),
        case(
            "bad base domain",
            Edit("tls:\n", "routing:\n  baseDomain: not a domain\ntls:\n"),
            ":21:3: routing.baseDomain: \"not a domain\" is not a domain",
        ),
        case(
            "unknown host variable",
            Edit(
                "tls:\n",
                "routing:\n  baseDomain: acme.dev\n  host: \"{{env}}.{{region}}.{{baseDomain}}\"\ntls:\n",
            ),
            ":22:3: routing.host: unknown variable `region`",
        ),
        case(
            "unknown add-on version",
            Edit(
                "addons:\n",
                "addons:\n  certManager:\n    version: v0.0.1\n",
            ),
            ":10:5: addons.certManager.version: cert-manager has no version v0.0.1",
        ),
        case(
            "autoscale min above max",
            File(
                "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nprovider:\n  aks:\n    subscription: 00000000-0000-0000-0000-000000000000\n    location: westeurope\n    resourceGroup:\n      strategy: perEnvironment\n    systemPool:\n      autoscale:\n        min: 5\n        max: 2\napp:\n  name: cats\n",
            ),
            ":13:9: provider.aks.systemPool.autoscale.min: min 5 is greater than max 2",
        ),
        case(
            "azure location with spaces",
            File(
                "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nprovider:\n  aks:\n    subscription: 00000000-0000-0000-0000-000000000000\n    location: West Europe\n    resourceGroup:\n      strategy: shared\n      name: rg\napp:\n  name: cats\n",
            ),
            ":8:5: provider.aks.location: \"West Europe\" is not an Azure region name",
        ),
        case(
            "node resource group too long",
            File(
                "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nprovider:\n  aks:\n    subscription: 00000000-0000-0000-0000-000000000000\n    location: australiasoutheast\n    resourceGroup:\n      strategy: perEnvironment\n      name: rg-previews-for-the-cats-team-in-the-southern-region\napp:\n  name: cats\n",
            ),
            ":9:5: provider.aks.resourceGroup: the node resource group MC_rg-previews-for-the-cats-team-in-the-southern-region-pr-7_pr-7_australiasoutheast would be 84 characters",
        ),
        case(
            "dns-01 identity that is not an identity's resource id",
            File(
                "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nprovider:\n  aks:\n    subscription: 00000000-0000-0000-0000-000000000000\n    location: westeurope\n    resourceGroup:\n      strategy: perEnvironment\n    dns:\n      zone: previews.acme.dev\n      resourceGroup: rg-zones\n      identity: cert-manager-dns\naddons:\n  certManager:\n    values:\n      azureDNS:\n        clientID: 55555555-5555-5555-5555-555555555555\napp:\n  name: cats\n",
            ),
            ":14:7: provider.aks.dns.identity: \"cert-manager-dns\" is not the resource id of a user-assigned managed identity",
        ),
        case(
            "dns-01 identity without its client id",
            File(
                "apiVersion: ephemera.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: t\nprovider:\n  aks:\n    subscription: 00000000-0000-0000-0000-000000000000\n    location: westeurope\n    resourceGroup:\n      strategy: perEnvironment\n    dns:\n      zone: previews.acme.dev\n      resourceGroup: rg-zones\n      identity: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-id/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cm\napp:\n  name: cats\n",
            ),
            ":14:7: provider.aks.dns.identity: needs addons.certManager.values.azureDNS.clientID",
        ),
        case(
            "missing template variable",
            Args(&[
                "--pr",
                "7",
                "--templates-with",
                "app/20-rollout.yaml.hbs",
                "kind: Rollout\nmetadata:\n  name: {{yaml nope}}\n",
            ]),
            "templates/app/20-rollout.yaml.hbs:3: missing variable `nope`",
        ),
        case(
            "template syntax error",
            Args(&[
                "--pr",
                "7",
                "--templates-with",
                "app/20-rollout.yaml.hbs",
                "kind: {{#if x}}\n",
            ]),
            "templates/app/20-rollout.yaml.hbs:",
        ),
        case(
            "image registry port out of range",
            Args(&["--pr", "7", "--image", "localhost:65536/cats:1"]),
            "--image: ",
        ),
        case(
            "repository not owner/name",
            Args(&["--pr", "7", "--repository", "acme"]),
            "--repository: \"acme\" is not owner/name",
        ),
        case(
            "repository with a path",
            Args(&["--pr", "7", "--repository", "acme/cats/../x"]),
            "--repository: ",
        ),
        case(
            "duplicate key",
            Edit("  replicas: 1\n", "  replicas: 1\n  replicas: 2\n"),
            ":14:3: app.replicas: the key \"replicas\" appears twice in this mapping; keep one",
        ),
        case(
            "two documents",
            Edit("ttl: 2h\n", "ttl: 2h\n---\nttl: 3h\n"),
            ":24:1: a second YAML document (after ---); an environment file holds exactly one",
        ),
        case(
            "alias bomb",
            Edit(
                "  name: t\n",
                "  name: t\n  labels: &a0 [x, x, x, x, x, x, x, x]\n  l1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]\n  l2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]\n  l3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]\n  l4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]\n  l5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]\n  l6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]\n  l7: [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]\n",
            ),
            "the file expands to too much data",
        ),
        case(
            "alias to no anchor",
            Edit("  replicas: 1\n", "  replicas: *nothing\n"),
            ":13:13: app.replicas: an alias (*name) names no anchor (&name)",
        ),
        case(
            "second key in a canary step",
            Edit(
                "    - setWeight: 20\n",
                "    - setWeight: 20\n      colour: blue\n",
            ),
            ":17:7: app.canary.steps[0].setWeight: \"colour\" cannot stand beside the key before it",
        ),
        case(
            "template renders no object",
            Args(&[
                "--pr",
                "7",
                "--templates-with",
                "app/90-extra.yaml.hbs",
                "just: data\n",
            ]),
            "templates/app/90-extra.yaml.hbs: rendered a document without apiVersion, kind and metadata.name",
        ),
        case(
            "quoted number",
            Edit("replicas: 1", "replicas: \"3\""),
            ":13:3: app.replicas: \"3\" is quoted, so it is text, but this field takes a number",
        ),
        case(
            "single-quoted number",
            Edit("nodes: 1", "nodes: '2'"),
            ":7:5: provider.local.nodes: \"2\" is quoted, so it is text, but this field takes a number",
        ),
        case(
            "quoted boolean",
            Edit("enabled: false", "enabled: \"true\""),
            ":10:5: addons.argoCd.enabled: \"true\" is quoted, so it is text, but this field takes true or false",
        ),
        case(
            "quoted weight in a canary step",
            Edit("setWeight: 20", "setWeight: \"20\""),
            ":16:7: app.canary.steps[0].setWeight: \"20\" is quoted, so it is text",
        ),
        case(
            "quoted port",
            Edit("  replicas: 1\n", "  replicas: 1\n  port: \"8080\"\n"),
            ":14:3: app.port: \"8080\" is quoted, so it is text",
        ),
        case(
            "fractional count",
            Edit("nodes: 1", "nodes: 1.5"),
            ":7:12: provider.local.nodes: \"1.5\" is not a whole number",
        ),
        case(
            "negative replicas",
            Edit("replicas: 1", "replicas: -1"),
            ":13:13: app.replicas: \"-1\" is not a whole number",
        ),
        case(
            "ttl as a bare number",
            Edit("ttl: 2h", "ttl: 7200"),
            ":22:1: ttl: \"7200\" is not a duration",
        ),
        case(
            "ttl yes",
            Edit("ttl: 2h", "ttl: yes"),
            ":22:1: ttl: \"yes\" is not a duration",
        ),
        // One mistake per field, found by running each through the binary.
        case(
            "metadata.name: name: T",
            Edit("  name: t\n", "  name: T\n"),
            ":4:3: metadata.name: \"T\" is not a DNS-1123 label (lowercase letters, digits",
        ),
        case(
            "metadata.name: name: -t",
            Edit("  name: t\n", "  name: -t\n"),
            ":4:3: metadata.name: \"-t\" is not a DNS-1123 label (lowercase letters, digit",
        ),
        case(
            "metadata.name: name: \"\"",
            Edit("  name: t\n", "  name: \"\"\n"),
            ":4:3: metadata.name: \"\" is not a DNS-1123 label (lowercase letters, digits,",
        ),
        case(
            "metadata.colour: name: t\n  colour: x",
            Edit("  name: t\n", "  name: t\n  colour: x\n"),
            ":5:3: metadata.colour: unknown field `colour`, expected one of name, descri",
        ),
        case(
            "provider.local.nodes: nodes: 0",
            Edit("    nodes: 1\n", "    nodes: 0\n"),
            ":7:5: provider.local.nodes: 0 is outside 1..=1000",
        ),
        case(
            "provider.local.extra: nodes: 1\n    extra: 2",
            Edit("    nodes: 1\n", "    nodes: 1\n    extra: 2\n"),
            ":8:5: provider.local.extra: unknown field `extra`, expected one of nodes, b",
        ),
        case(
            "addons.argoCD: argoCD:",
            Edit("  argoCd:\n", "  argoCD:\n"),
            ":9:3: addons.argoCD: unknown field `argoCD`, expected one of ingress, certM",
        ),
        case(
            "addons.nginx: nginx:",
            Edit("  argoCd:\n", "  nginx:\n"),
            ":9:3: addons.nginx: unknown field `nginx`, expected one of ingress, certMan",
        ),
        case(
            "app.name: name: Cats",
            Edit("  name: cats\n", "  name: Cats\n"),
            ":12:3: app.name: \"Cats\" must be a DNS-1035 label of at most 56 characters (",
        ),
        case(
            "app.name: name: cats_x",
            Edit("  name: cats\n", "  name: cats_x\n"),
            ":12:3: app.name: \"cats_x\" must be a DNS-1035 label of at most 56 characters",
        ),
        case(
            "app.name: name: \"\"",
            Edit("  name: cats\n", "  name: \"\"\n"),
            ":12:3: app.name: \"\" must be a DNS-1035 label of at most 56 characters (lowe",
        ),
        case(
            "app.replicas: replicas: 1000",
            Edit("  replicas: 1\n", "  replicas: 1000\n"),
            ":13:3: app.replicas: 1000 is outside 1..=100",
        ),
        case(
            "app.port: replicas: 1\n  port: 0",
            Edit("  replicas: 1\n", "  replicas: 1\n  port: 0\n"),
            ":14:3: app.port: must be 1..65535",
        ),
        case(
            "app.healthPath: replicas: 1\n  healthPath: healthz",
            Edit("  replicas: 1\n", "  replicas: 1\n  healthPath: healthz\n"),
            ":14:3: app.healthPath: \"healthz\" must be a path starting with /",
        ),
        case(
            "app.healthPath: replicas: 1\n  healthPath: \"/a b\"",
            Edit("  replicas: 1\n", "  replicas: 1\n  healthPath: \"/a b\"\n"),
            ":14:3: app.healthPath: \"/a b\" must be a path starting with /",
        ),
        case(
            "app.image: replicas: 1\n  image: \"not an image\"",
            Edit(
                "  replicas: 1\n",
                "  replicas: 1\n  image: \"not an image\"\n",
            ),
            ":14:3: app.image: \"not an image\" is not an image reference: it contains whi",
        ),
        case(
            "app.env.A: replicas: 1\n  env:\n    A: [1]",
            Edit("  replicas: 1\n", "  replicas: 1\n  env:\n    A: [1]\n"),
            ":15:8: app.env.A: expected string scalar",
        ),
        case(
            "app.resources.cpu: replicas: 1\n  resources:\n    cpu: lots",
            Edit(
                "  replicas: 1\n",
                "  replicas: 1\n  resources:\n    cpu: lots\n",
            ),
            ":15:5: app.resources.cpu: unknown field `cpu`, expected one of requests, li",
        ),
        case(
            "app.resources.requests.cpu: replicas: 1\n  resources:\n    requests:\n ",
            Edit(
                "  replicas: 1\n",
                "  replicas: 1\n  resources:\n    requests:\n      cpu: lots\n",
            ),
            ":16:7: app.resources.requests.cpu: \"lots\" is not a quantity such as 250m, 1",
        ),
        case(
            "app.canary.steps[0].setWeight: - setWeight: -5",
            Edit("    - setWeight: 20\n", "    - setWeight: -5\n"),
            ":16:18: app.canary.steps[0].setWeight: \"-5\" is not a whole number from 0 to",
        ),
        case(
            "app.canary.steps[0]: - setWeigh: 20",
            Edit("    - setWeight: 20\n", "    - setWeigh: 20\n"),
            ":16:7: app.canary.steps[0]: unknown variant `setWeigh`, expected one of set",
        ),
        case(
            "app.canary.steps[1].pause.duration: duration: 0s",
            Edit("        duration: 30s\n", "        duration: 0s\n"),
            ":18:9: app.canary.steps[1].pause.duration: \"0s\" is zero; leave the duration",
        ),
        case(
            "app.canary.steps[1].pause.duration: duration: 2d",
            Edit("        duration: 30s\n", "        duration: 2d\n"),
            ":18:9: app.canary.steps[1].pause.duration: \"2d\" is not a duration such as 3",
        ),
        case(
            "app.canary.steps[1].pause.extra: duration: 30s\n        extra: 1",
            Edit(
                "        duration: 30s\n",
                "        duration: 30s\n        extra: 1\n",
            ),
            ":19:9: app.canary.steps[1].pause.extra: unknown field `extra`, expected one",
        ),
        case(
            "app.canary.preview: preview: sometimes\n    steps:",
            Edit("    steps:\n", "    preview: sometimes\n    steps:\n"),
            ":15:14: app.canary.preview: unknown variant `sometimes`, expected one of fu",
        ),
        case(
            "app.canary.old: steps: []\n    old:",
            Edit("    steps:\n", "    steps: []\n    old:\n"),
            ":16:5: app.canary.old: unknown field `old`, expected one of steps, preview",
        ),
        case(
            "tls.issuer: issuer: self-signed",
            Edit("  issuer: selfsigned\n", "  issuer: self-signed\n"),
            ":21:11: tls.issuer: unknown variant `self-signed`, expected one of selfsign",
        ),
        case(
            "tls.email: issuer: letsencrypt\n  email: not-an-emai",
            Edit(
                "  issuer: selfsigned\n",
                "  issuer: letsencrypt\n  email: not-an-email\n",
            ),
            ":22:3: tls.email: \"not-an-email\" is not an e-mail address",
        ),
        case(
            "tls.wildcard: issuer: selfsigned\n  wildcard: maybe",
            Edit(
                "  issuer: selfsigned\n",
                "  issuer: selfsigned\n  wildcard: maybe\n",
            ),
            ":22:13: tls.wildcard: \"maybe\" is not true or false",
        ),
        case(
            "ttl: ttl: 5m",
            Edit("ttl: 2h\n", "ttl: 5m\n"),
            ":22:1: ttl: \"5m\" is outside 10m..30d",
        ),
        case(
            "ttl: ttl: 31d",
            Edit("ttl: 2h\n", "ttl: 31d\n"),
            ":22:1: ttl: \"31d\" is outside 10m..30d",
        ),
        case(
            "ttl: ttl: -1h",
            Edit("ttl: 2h\n", "ttl: -1h\n"),
            ":22:1: ttl: \"-1h\" is not a duration such as 30m or 4h (a number followed by",
        ),
        case(
            "maxLifetime: ttl: 2h\nmaxLifetime: 1h",
            Edit("ttl: 2h\n", "ttl: 2h\nmaxLifetime: 1h\n"),
            ":23:1: maxLifetime: \"1h\" is shorter than ttl \"2h\"",
        ),
        case(
            "maxLifetime: ttl: 2h\nmaxLifetime: soon",
            Edit("ttl: 2h\n", "ttl: 2h\nmaxLifetime: soon\n"),
            ":23:1: maxLifetime: \"soon\" is not a duration such as 30m or 4h (a number fo",
        ),
        case(
            "naming.prefix: ttl: 2h\nnaming:\n  prefix: UPPER",
            Edit("ttl: 2h\n", "ttl: 2h\nnaming:\n  prefix: UPPER\n"),
            ":24:3: naming.prefix: \"UPPER\" must be a DNS-1123 label of at most 27 charac",
        ),
        case(
            "naming.prefix: ttl: 2h\nnaming:\n  prefix: a-very-long-pr",
            Edit(
                "ttl: 2h\n",
                "ttl: 2h\nnaming:\n  prefix: a-very-long-prefix-that-goes-on-and-on-and-on\n",
            ),
            ":24:3: naming.prefix: \"a-very-long-prefix-that-goes-on-and-on-and-on\" must ",
        ),
        case(
            "limits.maxEnvironments: ttl: 2h\nlimits:\n  maxEnvironments: 0",
            Edit("ttl: 2h\n", "ttl: 2h\nlimits:\n  maxEnvironments: 0\n"),
            ":24:3: limits.maxEnvironments: must be at least 1",
        ),
        case(
            "limits.maxEnvironments: ttl: 2h\nlimits:\n  maxEnvironments: -1",
            Edit("ttl: 2h\n", "ttl: 2h\nlimits:\n  maxEnvironments: -1\n"),
            ":24:20: limits.maxEnvironments: \"-1\" is not a whole number from 0 to 429496",
        ),
        case(
            "pool.size: ttl: 2h\npool:\n  size: 0",
            Edit("ttl: 2h\n", "ttl: 2h\npool:\n  size: 0\n"),
            ":24:3: pool.size: 0 is outside 1..=50",
        ),
        case(
            "pool.maxAge: ttl: 2h\npool:\n  size: 1\n  maxAge: 1m",
            Edit("ttl: 2h\n", "ttl: 2h\npool:\n  size: 1\n  maxAge: 1m\n"),
            ":25:3: pool.maxAge: \"1m\" is shorter than 10m",
        ),
        case(
            "pool.stopped: ttl: 2h\npool:\n  size: 1\n  stopped: true",
            Edit("ttl: 2h\n", "ttl: 2h\npool:\n  size: 1\n  stopped: true\n"),
            ":25:3: pool.stopped: only AKS clusters can be stopped",
        ),
        case(
            "pool.size over limit: ttl: 2h\nlimits:\n  maxEnvironments: 1\npool:\n  size: 2",
            Edit(
                "ttl: 2h\n",
                "ttl: 2h\nlimits:\n  maxEnvironments: 1\npool:\n  size: 2\n",
            ),
            ":26:3: pool.size: 2 is more than limits.maxEnvironments (1)",
        ),
        case(
            "limits.other: ttl: 2h\nlimits:\n  other: 1",
            Edit("ttl: 2h\n", "ttl: 2h\nlimits:\n  other: 1\n"),
            ":24:3: limits.other: unknown field `other`, expected one of maxEnvironments",
        ),
        case(
            "routing.baseDomain: ttl: 2h\nrouting:\n  baseDomain: -bad.dev",
            Edit("ttl: 2h\n", "ttl: 2h\nrouting:\n  baseDomain: -bad.dev\n"),
            ":24:3: routing.baseDomain: \"-bad.dev\" is not a domain such as previews.acme",
        ),
        case(
            "routing.host: ttl: 2h\nrouting:\n  baseDomain: acme.dev\n",
            Edit(
                "ttl: 2h\n",
                "ttl: 2h\nrouting:\n  baseDomain: acme.dev\n  host: \"{{#each x}}{{/each}}.acme.dev\"\n",
            ),
            ":25:3: routing.host: \"{{#each x}}{{/each}}.acme.dev\" is not a plain variable",
        ),
        case(
            "routing.host: ttl: 2h\nrouting:\n  baseDomain: acme.dev\n",
            Edit(
                "ttl: 2h\n",
                "ttl: 2h\nrouting:\n  baseDomain: acme.dev\n  host: \"UPPER.{{baseDomain}}\"\n",
            ),
            ":25:3: routing.host: renders \"UPPER.acme.dev\", which is not a DNS name",
        ),
        case(
            "github.environment: ttl: 2h\ngithub:\n  environment: \"\"",
            Edit("ttl: 2h\n", "ttl: 2h\ngithub:\n  environment: \"\"\n"),
            ":24:3: github.environment: unknown field `environment`, expected one of rep",
        ),
        case(
            "github.bogus: ttl: 2h\ngithub:\n  bogus: 1",
            Edit("ttl: 2h\n", "ttl: 2h\ngithub:\n  bogus: 1\n"),
            ":24:3: github.bogus: unknown field `bogus`, expected one of repository, api",
        ),
        case(
            "notifications.slack.webhookEnv: ttl: 2h\nnotifications:\n  slack:\n    webh",
            Edit(
                "ttl: 2h\n",
                "ttl: 2h\nnotifications:\n  slack:\n    webhookEnv: lower-case\n",
            ),
            ":25:5: notifications.slack.webhookEnv: \"lower-case\" is not an environment v",
        ),
        case(
            "an app.env key that is not a name",
            Edit(
                "  replicas: 1\n",
                "  replicas: 1\n  env:\n    LOG: debug\n    \"bad key\": x\n",
            ),
            ":16:5: app.env.bad key: is not a valid environment variable name",
        ),
        case(
            "a YAML 1.1 boolean",
            Edit("    enabled: false\n", "    enabled: no\n"),
            ":10:14: addons.argoCd.enabled: \"no\" is not true or false (a YAML 1.1 boolean",
        ),
        case(
            "a YAML 1.1 boolean, capitalised",
            Edit("    enabled: false\n", "    enabled: On\n"),
            ":10:14: addons.argoCd.enabled: \"On\" is not true or false (a YAML 1.1 boolean",
        ),
        case(
            "--out onto an existing file",
            Args(&["--pr", "7", "--out", "Cargo.toml"]),
            "--out: Cargo.toml exists and is not a directory",
        ),
        case(
            "provider.local.binDir climbing out",
            Edit(
                "    nodes: 1\n",
                "    nodes: 1\n    binDir: bin:../../usr/bin\n",
            ),
            ":8:5: provider.local.binDir: \"../../usr/bin\" climbs out of the environment file's directory",
        ),
        case(
            "provider.local.binDir empty",
            Edit("    nodes: 1\n", "    nodes: 1\n    binDir: \":\"\n"),
            ":8:5: provider.local.binDir: is empty; leave it out",
        ),
        case(
            "notifications.slack.on[0]: ttl: 2h\nnotifications:\n  slack:\n    webh",
            Edit(
                "ttl: 2h\n",
                "ttl: 2h\nnotifications:\n  slack:\n    webhookEnv: SLACK\n    on: [sometimes]\n",
            ),
            ":26:10: notifications.slack.on[0]: \"sometimes\" is not an event (up, deploy, promote, abort, extend, down, gc, notify, release) or an outcome",
        ),
        case(
            "unknownTop: ttl: 2h\nunknownTop: 1",
            Edit("ttl: 2h\n", "ttl: 2h\nunknownTop: 1\n"),
            ":23:1: unknownTop: unknown field `unknownTop`, expected one of apiVersion, ",
        ),
        case(
            "apiVersion: removed",
            Edit("apiVersion: ephemera.dev/v1alpha1\n", ""),
            ":1:1: apiVersion: missing; expected apiVersion: ephemera.dev/v1alpha1",
        ),
        case(
            "kind: removed",
            Edit("kind: Environment\n", ""),
            ":1:1: kind: missing; expected kind: Environment",
        ),
        case(
            "metadata: metadata: {}",
            Edit("metadata:\n  name: t\n", "metadata: {}\n"),
            ":3:11: metadata: missing field `name`",
        ),
        case(
            "application: application:",
            Edit("app:\n", "application:\n"),
            ":11:1: application: unknown field `application`, expected one of apiVersion",
        ),
        case(
            "provider: provider: {}",
            Edit("provider:\n  local:\n    nodes: 1\n", "provider: {}\n"),
            ":5:12: provider: expected string key for externally tagged enum",
        ),
        case(
            "provider.local: provider:\n  local: {}\n  kind: {}",
            Edit(
                "provider:\n  local:\n    nodes: 1\n",
                "provider:\n  local: {}\n  kind: {}\n",
            ),
            ":7:3: provider.local: \"kind\" cannot stand beside the key before it: this ma",
        ),
        case(
            "provider.kind.nodes: provider:\n  kind:\n    nodes: 0",
            Edit(
                "provider:\n  local:\n    nodes: 1\n",
                "provider:\n  kind:\n    nodes: 0\n",
            ),
            ":7:5: provider.kind.nodes: unknown field `nodes`, expected one of nodeImage",
        ),
        case(
            "provider.kind.kubernetesVersion: provider:\n  kind:\n    kubernetesVersion:",
            Edit(
                "provider:\n  local:\n    nodes: 1\n",
                "provider:\n  kind:\n    kubernetesVersion: latest\n",
            ),
            ":7:5: provider.kind.kubernetesVersion: unknown field `kubernetesVersion`, e",
        ),
        case(
            "provider.kind.wait: provider:\n  kind:\n    wait: 5s",
            Edit(
                "provider:\n  local:\n    nodes: 1\n",
                "provider:\n  kind:\n    wait: 5s\n",
            ),
            ":7:5: provider.kind.wait: \"5s\" is outside 30s..1h",
        ),
        case(
            "app.registry: replicas: 1\n  registry:\n    server: \"htt",
            Edit(
                "  replicas: 1\n",
                "  replicas: 1\n  registry:\n    server: \"http://x\"\n",
            ),
            ":15:5: app.registry: missing field `username`",
        ),
        case(
            "app.registry: replicas: 1\n  registry:\n    server: ghcr",
            Edit(
                "  replicas: 1\n",
                "  replicas: 1\n  registry:\n    server: ghcr.io:99999\n",
            ),
            ":15:5: app.registry: missing field `username`",
        ),
        case(
            "app.registry: replicas: 1\n  registry:\n    server: ghcr",
            Edit(
                "  replicas: 1\n",
                "  replicas: 1\n  registry:\n    server: ghcr.io\n    passwordEnv: hunter2-secret\n",
            ),
            ":16:5: app.registry: missing field `username`",
        ),
        case(
            "aks provider.aks.subscription: subscription: not-a-guid",
            AksEdit(
                "subscription: 00000000-0000-0000-0000-000000000000",
                "subscription: not-a-guid",
            ),
            ":12:5: provider.aks.subscription: \"not-a-guid\" is not a subscription id (a ",
        ),
        case(
            "aks provider.aks.subscription: subscription: \"\"",
            AksEdit(
                "subscription: 00000000-0000-0000-0000-000000000000",
                "subscription: \"\"",
            ),
            ":12:5: provider.aks.subscription: \"\" is not a subscription id (a GUID such ",
        ),
        case(
            "aks provider.aks.location: location: WestEurope",
            AksEdit("location: westeurope", "location: WestEurope"),
            ":13:5: provider.aks.location: \"WestEurope\" is not an Azure region name such",
        ),
        case(
            "aks provider.aks.location: location: \"\"",
            AksEdit("location: westeurope", "location: \"\""),
            ":13:5: provider.aks.location: \"\" is not an Azure region name such as westeu",
        ),
        case(
            "aks provider.aks.location: location: west_europe",
            AksEdit("location: westeurope", "location: west_europe"),
            ":13:5: provider.aks.location: \"west_europe\" is not an Azure region name suc",
        ),
        case(
            "aks provider.aks.resourceGroup.strategy: strategy: sometimes",
            AksEdit("strategy: perEnvironment", "strategy: sometimes"),
            ":15:17: provider.aks.resourceGroup.strategy: unknown variant `sometimes`, e",
        ),
        case(
            "aks provider.aks.resourceGroup.name: name: \"rg prev\"",
            AksEdit("      name: rg-prev\n", "      name: \"rg prev\"\n"),
            ":16:7: provider.aks.resourceGroup.name: resource group name \"rg prev-pr-7\" ",
        ),
        case(
            "aks provider.aks.kubernetesVersion: kubernetesVersion: latest",
            AksEdit("kubernetesVersion: \"1.34\"", "kubernetesVersion: latest"),
            ":17:5: provider.aks.kubernetesVersion: \"latest\" is not <major>.<minor> or <",
        ),
        case(
            "aks provider.aks.kubernetesVersion: kubernetesVersion: \"v1.34\"",
            AksEdit(
                "kubernetesVersion: \"1.34\"",
                "kubernetesVersion: \"v1.34\"",
            ),
            ":17:5: provider.aks.kubernetesVersion: \"v1.34\" is not <major>.<minor> or <m",
        ),
        case(
            "aks provider.aks.kubernetesVersion: kubernetesVersion: \"1\"",
            AksEdit("kubernetesVersion: \"1.34\"", "kubernetesVersion: \"1\""),
            ":17:5: provider.aks.kubernetesVersion: \"1\" is not <major>.<minor> or <major",
        ),
        case(
            "aks provider.aks.systemPool.vmSize: vmSize: \"\"",
            AksEdit("vmSize: Standard_D4s_v5", "vmSize: \"\""),
            ":19:7: provider.aks.systemPool.vmSize: \"\" is not a VM size such as Standard",
        ),
        case(
            "aks provider.aks.systemPool.count: count: two",
            AksEdit("count: 2", "count: two"),
            ":20:14: provider.aks.systemPool.count: \"two\" is not a whole number from 0 t",
        ),
        case(
            "aks provider.aks.systemPool.count: count: \"2\"",
            AksEdit("count: 2", "count: \"2\""),
            ":20:7: provider.aks.systemPool.count: \"2\" is quoted, so it is text, but thi",
        ),
        case(
            "aks provider.aks.systemPool.autoscale: min: 0",
            AksEdit("        min: 1\n", "        min: 0\n"),
            ":21:7: provider.aks.systemPool.autoscale: min 0 / max 3 must satisfy 1 <= m",
        ),
        case(
            "aks provider.aks.systemPool.autoscale: max: 1001",
            AksEdit("        max: 3\n", "        max: 1001\n"),
            ":21:7: provider.aks.systemPool.autoscale: min 1 / max 1001 must satisfy 1 <",
        ),
        case(
            "aks provider.aks.systemPool.autoscale.step: max: 3\n        step: 1",
            AksEdit("        max: 3\n", "        max: 3\n        step: 1\n"),
            ":24:9: provider.aks.systemPool.autoscale.step: unknown field `step`, expect",
        ),
        case(
            "aks provider.aks.networkPlugin: networkPlugin: calico2",
            AksEdit("networkPlugin: azure", "networkPlugin: calico2"),
            ":24:5: provider.aks.networkPlugin: \"calico2\" is not one of azure, kubenet, ",
        ),
        case(
            "aks provider.aks.tags.: \"\": previews",
            AksEdit("      cost-center: previews\n", "      \"\": previews\n"),
            ":26:7: provider.aks.tags.: ARM tag names are 1-512 characters without < > %",
        ),
        case(
            "aks provider.aks.tags.cost-center: cost-center: [a]",
            AksEdit("      cost-center: previews\n", "      cost-center: [a]\n"),
            ":26:20: provider.aks.tags.cost-center: expected string scalar",
        ),
        case(
            "aks provider.aks.dns.zone: zone: not a zone",
            AksEdit(
                "      zone: previews.acme.dev\n",
                "      zone: not a zone\n",
            ),
            ":28:7: provider.aks.dns.zone: \"not a zone\" is not a DNS zone such as previe",
        ),
        case(
            "aks provider.aks.dns.zone: zone: -bad.dev",
            AksEdit("      zone: previews.acme.dev\n", "      zone: -bad.dev\n"),
            ":28:7: provider.aks.dns.zone: \"-bad.dev\" is not a DNS zone such as previews",
        ),
        case(
            "aks provider.aks.dns.resourceGroup: resourceGroup: \"\"",
            AksEdit(
                "      resourceGroup: rg-dns\n",
                "      resourceGroup: \"\"\n",
            ),
            ":29:7: provider.aks.dns.resourceGroup: must not be empty",
        ),
        case(
            "aks addons.ingress.implementation: implementation: traefik",
            AksEdit(
                "    implementation: gateway-api\n",
                "    implementation: traefik\n",
            ),
            ":38:21: addons.ingress.implementation: unknown variant `traefik`, expected ",
        ),
        case(
            "aks addons.certManager.version: certManager:\n    version: v0.1.0",
            AksEdit(
                "  certManager: {}\n",
                "  certManager:\n    version: v0.1.0\n",
            ),
            ":40:5: addons.certManager.version: cert-manager has no version v0.1.0; know",
        ),
        case(
            "aks addons.argoRollouts.version: argoRollouts:\n    version: latest",
            AksEdit(
                "  argoRollouts: {}\n",
                "  argoRollouts:\n    version: latest\n",
            ),
            ":43:5: addons.argoRollouts.version: argo-rollouts has no version latest; kn",
        ),
        case(
            "aks app.port: port: 65536",
            AksEdit("  port: 8080\n", "  port: 65536\n"),
            ":45:9: app.port: \"65536\" is not a whole number from 0 to 65535",
        ),
        case(
            "aks app.replicas: replicas: 0",
            AksEdit("  replicas: 2\n", "  replicas: 0\n"),
            ":46:3: app.replicas: 0 is outside 1..=100",
        ),
        case(
            "aks app.healthPath: healthPath: /health z",
            AksEdit("  healthPath: /healthz\n", "  healthPath: /health z\n"),
            ":47:3: app.healthPath: \"/health z\" must be a path starting with /",
        ),
        case(
            "aks app.env.1LOG: 1LOG: info",
            AksEdit("    LOG_LEVEL: info\n", "    1LOG: info\n"),
            ":49:5: app.env.1LOG: is not a valid environment variable name",
        ),
        case(
            "aks app.env.LOG_LEVEL: LOG_LEVEL: {a: b}",
            AksEdit("    LOG_LEVEL: info\n", "    LOG_LEVEL: {a: b}\n"),
            ":49:16: app.env.LOG_LEVEL: expected string scalar",
        ),
        case(
            "pr with a trailing space",
            Args(&["--pr", "7 "]),
            "--pr: \"7 \" is not a pull request number",
        ),
        case(
            "pr beyond u64",
            Args(&["--pr", "99999999999999999999"]),
            "--pr: \"99999999999999999999\" is not a pull request number",
        ),
        case(
            "empty name",
            Args(&["--name", ""]),
            "--name: \"\" is not a DNS-1123 label",
        ),
        case(
            "name starting with a hyphen",
            Args(&["--name", "-x"]),
            "--name: \"-x\" is not a DNS-1123 label",
        ),
        case(
            "empty image",
            Args(&["--pr", "7", "--image", ""]),
            "--image: \"\" is not an image reference: empty",
        ),
        case(
            "image with a space",
            Args(&["--pr", "7", "--image", "a b"]),
            "--image: \"a b\" is not an image reference",
        ),
        case(
            "image without a repository",
            Args(&["--pr", "7", "--image", ":tag"]),
            "--image: \":tag\" is not an image reference",
        ),
        case(
            "image with a short digest",
            Args(&["--pr", "7", "--image", "ghcr.io/acme/cats@sha256:xyz"]),
            "--image: \"ghcr.io/acme/cats@sha256:xyz\" is not an image reference: the digest",
        ),
        case(
            "--ttl zero",
            Args(&["--pr", "7", "--ttl", "0m"]),
            "--ttl: \"0m\" is outside 10m..30d",
        ),
        case(
            "--ttl not a duration",
            Args(&["--pr", "7", "--ttl", "abc"]),
            "--ttl: \"abc\" is not a duration",
        ),
        case(
            "branch with a newline",
            Args(&["--pr", "7", "--branch", "a\nb"]),
            "--branch: \"a\\nb\" contains control characters",
        ),
        case(
            "title with a bell",
            Args(&["--pr", "7", "--title", "x\u{7}y"]),
            "--title: \"x\\u{7}y\" contains control characters",
        ),
        case(
            "repository with three parts",
            Args(&["--pr", "7", "--repository", "a/b/c"]),
            "--repository: \"a/b/c\" is not owner/name",
        ),
        case(
            "repository without an owner",
            Args(&["--pr", "7", "--repository", "/b"]),
            "--repository: \"/b\" is not owner/name",
        ),
        case(
            "repository with a space",
            Args(&["--pr", "7", "--repository", "a/b c"]),
            "--repository: \"a/b c\" is not owner/name",
        ),
        case(
            "host outside the DNS zone",
            AksEdit("routing:\n", "routing:\n  host: \"{{env}}.other.dev\"\n"),
            ":71:3: routing.host: renders \"pr-7.other.dev\", which is not in the Azure DNS zone previews.acme.dev",
        ),
        case(
            "block helper in the host",
            AksEdit(
                "routing:\n",
                "routing:\n  host: \"{{#if pr}}pr{{/if}}-{{env}}.previews.acme.dev\"\n",
            ),
            ":71:3: routing.host: \"{{#if pr}}pr{{/if}}-{{env}}.pr\" is not a plain variable",
        ),
        case(
            "triple braces in the host",
            AksEdit(
                "routing:\n",
                "routing:\n  host: \"{{{env}}}.previews.acme.dev\"\n",
            ),
            ":71:3: routing.host: \"{{{env}}}.previews.acme.dev\" is not a plain variable",
        ),
        case(
            "helper call in the host",
            Edit(
                "tls:\n",
                "routing:\n  baseDomain: acme.dev\n  host: \"{{lookup this \\\"env\\\"}}.acme.dev\"\ntls:\n",
            ),
            ":22:3: routing.host: \"{{lookup this",
        ),
        case(
            "pool count 0 under autoscale",
            AksEdit("count: 2", "count: 0"),
            ":20:7: provider.aks.systemPool.count: 0 is outside autoscale 1..3",
        ),
        case(
            "pool count above autoscale max",
            AksEdit("count: 2", "count: 9"),
            ":20:7: provider.aks.systemPool.count: 9 is outside autoscale 1..3",
        ),
        case(
            "ARM endpoint beside a named cloud",
            AksEdit(
                "    networkPlugin: azure\n",
                "    networkPlugin: azure\n    cloud:\n      name: AzureCloud\n      resourceManager: https://arm.example.test/\n",
            ),
            ":27:7: provider.aks.cloud.resourceManager: AzureCloud has its own endpoints",
        ),
        case(
            "authority beside the default cloud",
            AksEdit(
                "    networkPlugin: azure\n",
                "    networkPlugin: azure\n    cloud:\n      authorityHost: https://login.example.test/\n",
            ),
            ":26:7: provider.aks.cloud.authorityHost: AzureCloud has its own endpoints",
        ),
        case(
            "a region that does not exist",
            AksEdit("location: westeurope", "location: westeurope2"),
            ":13:5: provider.aks.location: \"westeurope2\" is not a region of AzureCloud that ephemera knows",
        ),
        case(
            "a region of another cloud",
            AksEdit("location: westeurope", "location: chinaeast2"),
            ":13:5: provider.aks.location: \"chinaeast2\" is not a region of AzureCloud",
        ),
        case(
            "a public region in the China cloud",
            AksEdit(
                "    networkPlugin: azure\n",
                "    networkPlugin: azure\n    cloud:\n      name: AzureChinaCloud\n",
            ),
            ":13:5: provider.aks.location: \"westeurope\" is not a region of AzureChinaCloud",
        ),
    ]
}

/// Runs one case; returns the error line.
fn run_case(c: &Case, dir: &Path) -> (Option<i32>, String, String) {
    let env = dir.join("env.yaml");
    let text = match &c.input {
        Edit(from, to) => {
            assert!(
                BASE.contains(from),
                "{}: the base file has no {from:?}",
                c.name
            );
            BASE.replacen(from, to, 1)
        }
        File(t) => t.to_string(),
        AksEdit(from, to) => {
            assert!(
                AKS.contains(from),
                "{}: pr-aks.yaml has no {from:?}",
                c.name
            );
            AKS.replacen(from, to, 1)
        }
        Args(_) => BASE.to_string(),
    };
    std::fs::write(&env, text).unwrap();
    let mut env_arg = env.to_str().unwrap().to_string();
    let mut args: Vec<String> = vec![];
    let mut image = true;
    match &c.input {
        Args(a) => {
            let mut it = a.iter();
            while let Some(arg) = it.next() {
                match *arg {
                    "--image-from-file-only" => image = false,
                    "--env-file" => env_arg = it.next().unwrap().to_string(),
                    "--templates-with" => {
                        let (name, body) = (it.next().unwrap(), it.next().unwrap());
                        let t = dir.join("templates");
                        let p = t.join(name);
                        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                        std::fs::write(&p, body).unwrap();
                        args.extend(["--templates".to_string(), t.to_str().unwrap().to_string()]);
                    }
                    "--image" => {
                        image = false;
                        args.extend(["--image".to_string(), it.next().unwrap().to_string()]);
                    }
                    other => args.push(other.to_string()),
                }
            }
        }
        _ => args.extend(["--pr".to_string(), "7".to_string()]),
    }
    let mut cmd = ephemera();
    // HOME and the XDG directories are an empty directory the test checks afterwards.
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    cmd.env("HOME", &home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CACHE_HOME", home.join("cache"));
    cmd.args(["plan", "--env", &env_arg]).args(&args);
    if !args.iter().any(|a| a == "--now") {
        cmd.args(["--now", "2026-11-28T10:00:00Z"]);
    }
    if image {
        cmd.args(["--image", IMAGE]);
    }
    let o = cmd.output().unwrap();
    (o.status.code(), stdout(&o), stderr(&o))
}

#[test]
fn every_bad_input_exits_2_with_one_line_naming_the_place() {
    let cases = cases();
    assert!(cases.len() >= 150, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let dir = tempfile::tempdir().unwrap();
        let (code, out, err) = run_case(c, dir.path());
        let problems = [
            (code != Some(2)).then(|| format!("exit code {code:?}, not 2")),
            err.contains("panicked").then(|| "panicked".to_string()),
            (err.lines().count() != 1).then(|| "not exactly one line on stderr".to_string()),
            (!err.starts_with("error: ")).then(|| "does not start with `error: `".to_string()),
            (!err.contains(c.expect)).then(|| format!("does not contain {:?}", c.expect)),
            (!out.is_empty()).then(|| "printed on stdout".to_string()),
            (std::fs::read_dir(dir.path().join("home")).unwrap().count() != 0)
                .then(|| "wrote under HOME".to_string()),
        ];
        for p in problems.into_iter().flatten() {
            failures.push(format!("{}: {p}\n    stderr: {err:?}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn a_secret_in_the_wrong_field_is_not_echoed() {
    let dir = tempfile::tempdir().unwrap();
    let c = case(
        "slack webhook inline",
        Edit(
            "ttl: 2h\n",
            "ttl: 2h\nnotifications:\n  slack:\n    webhookEnv: https://hooks.slack.com/services/T000/B000/SECRET\n",
        ),
        "",
    );
    let (_, _, err) = run_case(&c, dir.path());
    assert!(!err.contains("SECRET"), "{err}");
}

#[test]
fn file_errors_name_the_file_as_given() {
    let o = ephemera()
        .args([
            "plan",
            "--env",
            "environments/missing.yaml",
            "--pr",
            "1",
            "--image",
            IMAGE,
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: environments/missing.yaml: no such file\n"
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["plan", "--env", "environments/local.yaml"],
        vec![
            "plan",
            "--env",
            "environments/local.yaml",
            "--pr",
            "1",
            "--name",
            "x",
        ],
        vec![
            "plan",
            "--env",
            "environments/local.yaml",
            "--pr",
            "1",
            "--output",
            "xml",
        ],
        vec!["frobnicate"],
    ] {
        let o = ephemera().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("error: "),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"));
    }
}

/// Runs `ephemera ARGS` with HOME and the XDG directories in `home`, so a test can check that
/// nothing was written; gives up after 20 s (a read that blocks would hang the test otherwise).
fn run_in(home: &Path, args: &[&str]) -> std::process::Output {
    ephemera()
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .args(args)
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap()
}

/// `plan --env FILE --pr 7 --image IMAGE`.
fn plan_args(file: &str) -> Vec<&str> {
    vec!["plan", "--env", file, "--pr", "7", "--image", IMAGE]
}

fn assert_one_line_exit_2(o: &std::process::Output, expect: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains(expect), "{err}");
    assert!(stdout(o).is_empty());
}

#[test]
fn special_and_oversized_files_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("env.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, format!("{BASE}# {}\n", "x".repeat(2 * 1024 * 1024))).unwrap();
    for (file, expect) in [
        (fifo.to_str().unwrap(), "env.fifo: is not a regular file"),
        ("/dev/zero", "/dev/zero: is not a regular file"),
        (big.to_str().unwrap(), "big.yaml: is 2097"),
    ] {
        let o = run_in(dir.path(), &plan_args(file));
        assert_one_line_exit_2(&o, expect);
    }
}

#[test]
fn a_huge_value_is_cut_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env.yaml");
    let huge = format!("9{}", "x".repeat(600_000));
    for (from, to, place) in [
        (
            "replicas: 1",
            format!("replicas: {huge}"),
            ":13:13: app.replicas:",
        ),
        ("name: cats", format!("name: c{huge}"), ":12:3: app.name:"),
    ] {
        std::fs::write(&env, BASE.replace(from, &to)).unwrap();
        let o = run_in(dir.path(), &plan_args(env.to_str().unwrap()));
        assert_one_line_exit_2(&o, place);
        assert!(stderr(&o).len() < 1000, "{} bytes", stderr(&o).len());
    }
}

#[test]
fn up_refuses_a_zero_timeout_before_it_creates_anything() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env.yaml");
    std::fs::write(&env, BASE).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let mut args = plan_args(env.to_str().unwrap());
    args[0] = "up";
    args.extend(["--timeout", "0s"]);
    let o = run_in(&home, &args);
    assert_one_line_exit_2(&o, "--timeout: \"0s\" would give up before starting");
    assert_eq!(
        std::fs::read_dir(&home).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_new_region_is_accepted_through_extra_locations() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env.yaml");
    let text = AKS
        .replacen("location: westeurope", "location: atlantisnorth", 1)
        .replacen(
            "    networkPlugin: azure\n",
            "    networkPlugin: azure\n    cloud:\n      extraLocations: [atlantisnorth]\n",
            1,
        );
    std::fs::write(&env, text).unwrap();
    let o = run_in(dir.path(), &plan_args(env.to_str().unwrap()));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("location: atlantisnorth"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_subscription_id_from_the_environment_that_is_not_a_guid_stops_up_before_arm() {
    // ARM is a closed port: a request would fail slowly with exit 3, not at once with exit 2.
    let arm = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}/", l.local_addr().unwrap().port())
    };
    let home = tempfile::tempdir().unwrap();
    for value in [
        "garbage",
        "00000000-0000-0000-0000-00000000000g",
        "s3cr3t/../x",
    ] {
        let o = ephemera()
            .env("HOME", home.path())
            .env("AZURE_SUBSCRIPTION_ID", value)
            .env("AZURE_RESOURCE_MANAGER_ENDPOINT", &arm)
            .env("EPHEMERA_AZURE_TOKEN", "opaque-test-token")
            .env("PATH", "")
            .args([
                "up",
                "--env",
                "environments/adhoc-aks.yaml",
                "--name",
                "demo",
            ])
            .args(["--image", IMAGE, "--timeout", "30s"])
            .timeout(std::time::Duration::from_secs(10))
            .output()
            .unwrap();
        assert_one_line_exit_2(&o, "AZURE_SUBSCRIPTION_ID: is not a subscription id");
        assert!(!stderr(&o).contains(value), "{}", stderr(&o));
    }
}

#[test]
fn template_override_errors_name_the_users_file_or_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    let write = |rel: &str, body: &str| {
        let p = mine.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let plan_with = |templates: &Path| {
        let mut args = plan_args("environments/local.yaml");
        args.extend(["--templates", templates.to_str().unwrap()]);
        run_in(dir.path(), &args)
    };
    // A directory that is not there names the flag.
    let o = plan_with(&dir.path().join("missing"));
    assert_one_line_exit_2(&o, "--templates: ");
    assert!(
        stderr(&o).contains("missing: no such directory"),
        "{}",
        stderr(&o)
    );
    // Errors in an override name the user's file, not the built-in path.
    let rollout = write(
        "app/20-rollout.yaml.hbs",
        "kind: Rollout\nmetadata:\n  name: {{yaml nope}}\n",
    );
    assert_one_line_exit_2(
        &plan_with(&mine),
        &format!("{rollout}:3: missing variable `nope`"),
    );
    write("app/20-rollout.yaml.hbs", "kind: {{#if x}}\n");
    assert_one_line_exit_2(&plan_with(&mine), &format!("{rollout}:2:1: "));
    std::fs::remove_file(&rollout).unwrap();
    // A file that takes the place of nothing is not ignored.
    for rel in [
        "typo.hbs",
        "providers/gke.yaml.hbs",
        "addons/nothing/overlay.yaml.hbs",
        "app/README",
    ] {
        let p = write(rel, "x: 1\n");
        let o = plan_with(&mine);
        assert_one_line_exit_2(&o, &format!("{p}: matches no template ephemera uses"));
        std::fs::remove_file(&p).unwrap();
    }
}
