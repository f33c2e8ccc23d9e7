"""The real-kind tier's container engine and kind node image, for scripts/testcluster.

    docker-up     install docker.io if dockerd is missing; start dockerd with the runtime wrapper
    docker-down   stop the dockerd that docker-up started (none other)
    kind-image    build (or load from the cache) the kind node image and the images the tier's
                  pods run; print KEY=VALUE lines for the tests

Everything is built here from upstream sources and Debian packages; nothing is pulled from a
container registry:
- the node image: a Debian rootfs (debootstrap: systemd, containerd, runc, CNI plugins) with kind's
  base-image files from the sigs.k8s.io/kind module, kubelet/kubeadm/kubectl, crictl, the runc
  wrapper, a bridge CNI config (kind's kindnetd is not buildable here), and the control plane's
  images preloaded into its containerd;
- pod images, each one layer made from files built here (no base image): kube-apiserver,
  kube-controller-manager, kube-scheduler, kube-proxy (with iptables from the Debian rootfs),
  etcd, CoreDNS, pause (gcc -static), the Argo Rollouts controller and the demo app.

Machine workarounds (see the docs): `runc-wrapper` drops CAP_SYS_RESOURCE, which the capability
bounding set of these machines lacks, from every container spec; it is dockerd's default runtime
and the node containerd's runc BinaryName.
"""

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

DEBIAN_SUITE = "bookworm"
NODE_PACKAGES = ["systemd", "systemd-sysv", "dbus", "conntrack", "iptables", "nftables", "iproute2",
                 "ethtool", "kmod", "libseccomp2", "pigz", "ca-certificates", "procps", "mount",
                 "util-linux", "jq", "containerd", "runc", "containernetworking-plugins"]
RUNTIME_NAME = "ephemera-runc"
# The image names kubeadm v1.36 asks for (cmd/kubeadm/app/constants): the contents are this
# repo's builds (etcd and CoreDNS at the versions pinned in scripts/testcluster).
ETCD_TAG = "3.6.8-0"
COREDNS_TAG = "v1.14.2"
PAUSE_TAG = "3.10.2"
APP_IMAGE = "ephemera.local/demo-app"
APP_VERSIONS = ["v1", "v2"]
ROLLOUTS_IMAGE = "quay.io/argoproj/argo-rollouts"
POD_SUBNET = "10.244.0.0/24"


class Ctx:
    """What the node image needs from scripts/testcluster: logging, running and the binaries."""

    def __init__(self, log, die, run, cache_root, bin_dir, versions, repo):
        self.log, self.die, self.run = log, die, run
        self.cache_root, self.bin_dir = cache_root, bin_dir
        self.v = versions
        self.repo = repo


# --- docker -----------------------------------------------------------------------------------

def docker_dir(ctx):
    return ctx.cache_root() / "dockerd"


def docker_ok():
    return subprocess.run(["docker", "info"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def docker_up(ctx, wrapper):
    """Start dockerd (installing docker.io first if needed) with `wrapper` as default runtime."""
    if docker_ok():
        info = subprocess.run(["docker", "info", "--format", "{{.DefaultRuntime}}"],
                              capture_output=True, text=True).stdout.strip()
        if info != RUNTIME_NAME:
            ctx.log(f"warning: a dockerd not started by testcluster is running with default "
                    f"runtime {info!r}; kind's --privileged nodes fail on machines without "
                    "CAP_SYS_RESOURCE unless it is the runc wrapper")
        return
    if shutil.which("dockerd") is None:
        ctx.log("dockerd is missing; installing docker.io with apt-get")
        ctx.run(["apt-get", "install", "-y", "--no-install-recommends", "docker.io"], capture=True)
    d = docker_dir(ctx)
    d.mkdir(parents=True, exist_ok=True)
    logf = open(d / "dockerd.log", "ab")
    p = subprocess.Popen(["dockerd", f"--add-runtime={RUNTIME_NAME}={wrapper}",
                          f"--default-runtime={RUNTIME_NAME}", f"--pidfile={d / 'dockerd.pid'}"],
                         stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    (d / "started-by-testcluster").write_text(str(p.pid))
    for _ in range(120):
        if docker_ok():
            ctx.log(f"dockerd is up (pid {p.pid}, log {d / 'dockerd.log'})")
            return
        if p.poll() is not None:
            ctx.die(f"dockerd exited ({p.returncode}); see {d / 'dockerd.log'}")
        time.sleep(0.5)
    ctx.die(f"dockerd did not answer within 60s; see {d / 'dockerd.log'}")


def docker_down(ctx):
    """Stop the dockerd docker_up started, by its recorded pid; any other dockerd is left alone."""
    marker = docker_dir(ctx) / "started-by-testcluster"
    if not marker.exists():
        ctx.log("no dockerd started by testcluster; nothing to stop")
        return
    pid = int(marker.read_text())
    try:
        os.kill(pid, 15)
        for _ in range(60):
            os.kill(pid, 0)
            time.sleep(0.5)
        ctx.log(f"dockerd {pid} did not stop in 30s; killing it")
        os.kill(pid, 9)
    except ProcessLookupError:
        pass
    marker.unlink()
    ctx.log(f"dockerd {pid} stopped")


# --- image archives ---------------------------------------------------------------------------

def _add(tar, name, data=None, src=None, mode=0o755, link=None, is_dir=False):
    info = tarfile.TarInfo(name.lstrip("/"))
    info.mtime = 0
    if is_dir:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    elif link is not None:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, link, 0o777
        tar.addfile(info)
    else:
        if src is not None:
            data = Path(src).read_bytes()
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))


def image_archive(out, tags, entries, config):
    """Write a one-layer image as a docker archive (what `docker load`, `ctr images import` and
    `kind load image-archive` read). entries: (path, kwargs for _add) in order."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.GNU_FORMAT) as t:
        seen = set()
        for path, kw in entries:
            parts = Path(path.lstrip("/")).parts
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in seen:
                    seen.add(d)
                    _add(t, d, is_dir=True)
            _add(t, path, **kw)
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    cfg = {"architecture": "amd64", "os": "linux", "config": config,
           "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{"created_by": "testcluster"}]}
    cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
    cfg_name = hashlib.sha256(cfg_bytes).hexdigest() + ".json"
    layer_name = diff_id[7:] + "/layer.tar"
    manifest = [{"Config": cfg_name, "RepoTags": tags, "Layers": [layer_name]}]
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, mode="w") as t:
        _add(t, cfg_name, data=cfg_bytes, mode=0o644)
        _add(t, diff_id[7:], is_dir=True)
        _add(t, layer_name, data=layer_bytes, mode=0o644)
        _add(t, "manifest.json", data=json.dumps(manifest).encode(), mode=0o644)
    tmp.rename(out)


def binary_image(out, tag, binary, dest, entrypoint=None, env=None, extra=(), user=None):
    env = ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"] + list(env or [])
    cfg = {"Env": env}
    if user:
        cfg["User"] = user
    if entrypoint:
        cfg["Entrypoint"] = entrypoint
    entries = [(dest, {"src": binary}), ("/tmp", {"is_dir": True}), *extra]
    image_archive(out, [tag], entries, cfg)


def iptables_entries(rootfs):
    """kube-proxy's iptables (nft backend) with its extension modules and the shared libraries
    both load (libxt_statistic needs libm, for one), from the rootfs."""
    xt = rootfs / "usr/lib/x86_64-linux-gnu/xtables"
    modules = [f"/usr/lib/x86_64-linux-gnu/xtables/{so.name}" for so in sorted(xt.glob("*.so"))]
    out = subprocess.run(["chroot", str(rootfs), "ldd", "/usr/sbin/xtables-nft-multi", *modules],
                         capture_output=True, text=True, check=True).stdout
    libs = set()
    for line in out.splitlines():
        if line.endswith(":"):
            continue  # the name of the next file ldd reports on
        for p in line.split():
            if p.startswith("/"):
                libs.add(p)
    entries = [("/usr/sbin/xtables-nft-multi", {"src": rootfs / "usr/sbin/xtables-nft-multi"})]
    for lib in sorted(libs):
        real = Path(os.path.realpath(rootfs / lib.lstrip("/")))
        entries.append((lib, {"src": real}))
    for so in sorted(xt.glob("*.so")):
        entries.append((f"/usr/lib/x86_64-linux-gnu/xtables/{so.name}", {"src": so}))
    for name in ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                 "ip6tables-restore"]:
        entries.append((f"/usr/sbin/{name}", {"link": "xtables-nft-multi"}))
    return entries


def pause_binary(ctx, work):
    """pause from the Kubernetes module's build/pause/linux/pause.c, linked statically."""
    info = json.loads(ctx.run(["go", "mod", "download", "-json",
                               f"k8s.io/kubernetes@{ctx.v['kubernetes']}"], capture=True,
                              cwd=tempfile.gettempdir()))
    src = Path(info["Dir"]) / "build" / "pause" / "linux" / "pause.c"
    out = work / "pause"
    ctx.run(["gcc", "-Os", "-static", "-Wall", "-Werror", f"-DVERSION=v{PAUSE_TAG}",
             "-o", str(out), str(src)])
    return out


def pod_images(ctx, bins, rootfs, outdir, work):
    """Every image archive the tier needs, as {tag: path}; preload marks those the node image
    carries (the control plane's), the rest are loaded by the test."""
    k8s = ctx.v["kubernetes"]
    images, preload = {}, set()

    def add(tag, name, *args, pre=False, **kw):
        path = outdir / f"{name}.tar"
        binary_image(path, tag, *args, **kw)
        images[tag] = path
        if pre:
            preload.add(tag)

    for c in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]:
        add(f"registry.k8s.io/{c}:{k8s}", c, bins[c], f"/usr/local/bin/{c}", pre=True)
    add(f"registry.k8s.io/kube-proxy:{k8s}", "kube-proxy", bins["kube-proxy"],
        "/usr/local/bin/kube-proxy", extra=iptables_entries(rootfs), pre=True)
    add(f"registry.k8s.io/etcd:{ETCD_TAG}", "etcd", bins["etcd"], "/usr/local/bin/etcd", pre=True)
    add(f"registry.k8s.io/coredns/coredns:{COREDNS_TAG}", "coredns", bins["coredns"], "/coredns",
        entrypoint=["/coredns"], pre=True)
    add(f"registry.k8s.io/pause:{PAUSE_TAG}", "pause", pause_binary(ctx, work), "/pause",
        entrypoint=["/pause"], pre=True)
    add(f"{ROLLOUTS_IMAGE}:{ctx.v['argo-rollouts']}", "argo-rollouts",
        bins["rollouts-controller-incluster"], "/bin/rollouts-controller",
        entrypoint=["/bin/rollouts-controller"], user="999")  # upstream's image runs as 999
    for v in APP_VERSIONS:
        add(f"{APP_IMAGE}:{v}", f"demo-app-{v}", bins["demo-app"], "/demo-app",
            entrypoint=["/demo-app"], env=[f"VERSION={v}"], user="65532")
    return images, preload


# --- the node image ---------------------------------------------------------------------------

def debian_mirror():
    for f in sorted(Path("/etc/apt/sources.list.d").glob("*")) + [Path("/etc/apt/sources.list")]:
        try:
            text = f.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and "security" not in line:
                return next(w for w in words[1:] if w.startswith("http"))
    return None


def rootfs_tar(ctx):
    """The debootstrapped rootfs as a tar in the cache, keyed by suite and packages: the slowest
    step of a cold build, and independent of everything else in the node image."""
    key = hashlib.sha256(json.dumps([DEBIAN_SUITE, NODE_PACKAGES]).encode()).hexdigest()[:12]
    out = ctx.bin_dir("kind-rootfs", f"{DEBIAN_SUITE}-{key}")
    tar = out / "rootfs.tar"
    if not tar.exists():
        work = ctx.cache_root() / "build" / "kind-rootfs"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        debootstrap(ctx, work / "rootfs")
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        with open(partial / "rootfs.tar", "wb") as f:
            subprocess.run(["tar", "-C", str(work / "rootfs"), "--numeric-owner", "-c", "."],
                           stdout=f, check=True)
        shutil.rmtree(out, ignore_errors=True)
        partial.rename(out)
        shutil.rmtree(work, ignore_errors=True)
    return tar


def debootstrap(ctx, rootfs):
    if shutil.which("debootstrap") is None:
        ctx.log("debootstrap is missing; installing it with apt-get")
        ctx.run(["apt-get", "install", "-y", "--no-install-recommends", "debootstrap"],
                capture=True)
    mirror = debian_mirror()
    if not mirror:
        ctx.die("no Debian mirror found in /etc/apt/sources.list{,.d}")
    t0 = time.time()
    ctx.run(["debootstrap", "--variant=minbase", "--include=" + ",".join(NODE_PACKAGES),
             DEBIAN_SUITE, str(rootfs), mirror], capture=True)
    ctx.log(f"debootstrap {DEBIAN_SUITE} done ({time.time() - t0:.0f}s)")


def kind_module_dir(ctx):
    info = json.loads(ctx.run(["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{ctx.v['kind']}"],
                              capture=True, cwd=tempfile.gettempdir()))
    return Path(info["Dir"])


CNI_CONFIG = {
    "cniVersion": "1.0.0",
    "name": "kind-bridge",
    "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
         "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_SUBNET}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}

# kind applies /kind/manifests/default-cni.yaml unless disableDefaultCNI is set: here the bridge
# CNI config is part of the image, so the manifest only says so.
DEFAULT_CNI = f"""# Stand-in for kind's kindnetd (not buildable here): the node image carries a bridge CNI
# config (/etc/cni/net.d/10-bridge.conflist, pod subnet {POD_SUBNET}), enough for one node.
apiVersion: v1
kind: ConfigMap
metadata:
  name: ephemera-bridge-cni
  namespace: kube-system
data:
  conflist: '{json.dumps(CNI_CONFIG)}'
"""

# kind's local-path-provisioner image is not built here; a StorageClass without a provisioner.
DEFAULT_STORAGE = """apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
"""


def containerd_config(kind_files):
    text = (kind_files / "etc/containerd/config.toml").read_text()
    old = 'sandbox_image = "registry.k8s.io/pause:3.10"'
    if old not in text:
        raise RuntimeError("kind's containerd config no longer sets the sandbox image as expected")
    text = text.replace(old, f'sandbox_image = "registry.k8s.io/pause:{PAUSE_TAG}"')
    # Lowering a process's oom_score_adj needs CAP_SYS_RESOURCE, which no process has here: let
    # containerd clamp pods' values to its own (its option for rootless nodes) instead of runc
    # failing to start every critical pod.
    old = "restrict_oom_score_adj = false"
    if old not in text:
        raise RuntimeError("kind's containerd config no longer sets restrict_oom_score_adj")
    text = text.replace(old, "restrict_oom_score_adj = true")
    anchor = "    SystemdCgroup = true\n"
    if text.count(anchor) < 1:
        raise RuntimeError("kind's containerd config has no runc SystemdCgroup option")
    # Every runc the node's containerd starts goes through the wrapper (first runtime = runc).
    text = text.replace(anchor, anchor + '    BinaryName = "/usr/local/sbin/runc-wrapper"\n', 1)
    return text


def lay_out_node(ctx, rootfs, bins):
    """Put kind's base-image files and the node binaries into the rootfs, as kind's base image
    Dockerfile and `kind build node-image` do."""
    kind_files = kind_module_dir(ctx) / "images" / "base" / "files"
    for src in sorted(kind_files.rglob("*")):
        if src.is_file() and "LICENSES" not in src.parts:
            rel = src.relative_to(kind_files)
            dst = rootfs / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            executable = rel.parts[0] == "usr" or rel.parts[:2] == ("kind", "bin")
            os.chmod(dst, 0o755 if executable else 0o644)
    (rootfs / "etc/containerd/config.toml").write_text(containerd_config(kind_files))
    spec = json.loads(subprocess.run(["ctr", "oci", "spec"], capture_output=True, text=True,
                                     check=True).stdout)
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append(
        {"path": "/kind/bin/mount-product-files.sh"})
    spec["process"].pop("rlimits", None)
    (rootfs / "etc/containerd/cri-base.json").write_text(json.dumps(spec, indent=1))
    for name, dest in [("kubelet", "usr/bin"), ("kubeadm", "usr/bin"), ("kubectl", "usr/bin"),
                       ("crictl", "usr/local/bin"), ("runc-wrapper", "usr/local/sbin")]:
        shutil.copyfile(bins[name], rootfs / dest / name)
        os.chmod(rootfs / dest / name, 0o755)
    for link, target in [("usr/local/bin/containerd", "/usr/bin/containerd"),
                         ("sbin/init", "/lib/systemd/systemd")]:
        p = rootfs / link
        if p.is_symlink() or p.exists():
            p.unlink()
        p.symlink_to(target)
    cni_bin = rootfs / "opt/cni/bin"
    cni_bin.parent.mkdir(parents=True, exist_ok=True)
    if not cni_bin.is_symlink():
        shutil.rmtree(cni_bin, ignore_errors=True)
        cni_bin.symlink_to("/usr/lib/cni")
    net_d = rootfs / "etc/cni/net.d"
    net_d.mkdir(parents=True, exist_ok=True)
    (net_d / "10-bridge.conflist").write_text(json.dumps(CNI_CONFIG, indent=1))
    (rootfs / "kind/manifests").mkdir(parents=True, exist_ok=True)
    (rootfs / "kind/manifests/default-cni.yaml").write_text(DEFAULT_CNI)
    (rootfs / "kind/manifests/default-storage.yaml").write_text(DEFAULT_STORAGE)
    (rootfs / "kind/version").write_text(ctx.v["kubernetes"])
    (rootfs / "etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
    systemd_setup(ctx, rootfs)


def systemd_setup(ctx, rootfs):
    """The base Dockerfile's systemd trimming and unit enabling, done offline on the rootfs."""
    for pattern in ["lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
                    "lib/systemd/system/multi-user.target.wants/*", "etc/systemd/system/*.wants/*",
                    "lib/systemd/system/local-fs.target.wants/*",
                    "lib/systemd/system/sockets.target.wants/*udev*",
                    "lib/systemd/system/sockets.target.wants/*initctl*",
                    "lib/systemd/system/basic.target.wants/*"]:
        for p in rootfs.glob(pattern):
            if p.is_symlink() or p.is_file():
                p.unlink()
    with open(rootfs / "etc/systemd/journald.conf", "a") as f:
        f.write("ReadKMsg=no\n")
    ctx.run(["systemctl", f"--root={rootfs}", "enable", "kubelet.service", "containerd.service",
             "undo-mount-hacks.service"], capture=True)
    ctx.run(["systemctl", f"--root={rootfs}", "mask", "systemd-binfmt.service"], capture=True)


def preload(ctx, rootfs, archives, work):
    """Import image archives into the rootfs's containerd store with a containerd of the host's
    (docker.io's), whose root is the rootfs's /var/lib/containerd."""
    state = work / "containerd-state"
    state.mkdir(parents=True, exist_ok=True)
    sock = state / "containerd.sock"
    cfg = work / "containerd-preload.toml"
    cfg.write_text("\n".join([
        "version = 2",
        f'root = "{rootfs / "var/lib/containerd"}"',
        f'state = "{state}"',
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        f'[grpc]\n  address = "{sock}"',
        "",
    ]))
    logf = open(work / "containerd-preload.log", "wb")
    p = subprocess.Popen(["containerd", "--config", str(cfg)], stdout=logf, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        for _ in range(60):
            if subprocess.run(["ctr", "--address", str(sock), "version"], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        for path in archives:
            ctx.run(["ctr", "--address", str(sock), "-n", "k8s.io", "images", "import",
                     "--snapshotter", "overlayfs", str(path)], capture=True)
    finally:
        p.terminate()
        p.wait(timeout=30)


def node_image_key(ctx, bins):
    """A hash of everything the node image is made of: this file, kind's version and the
    recipes (stamps) of the binaries in it."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(json.dumps(ctx.v, sort_keys=True).encode())
    h.update(json.dumps(NODE_PACKAGES).encode())
    for name in sorted(bins):
        stamp = Path(bins[name]).parent / ".recipe.json"
        h.update(name.encode() + (stamp.read_bytes() if stamp.exists() else b"-"))
    return h.hexdigest()[:12]


def docker_has(tag):
    return subprocess.run(["docker", "image", "inspect", tag], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def build_node_image(ctx, bins):
    """Build the node image and pod images into the cache (unless there), load them into docker,
    and return {tag: archive} of the pod images plus the node image's tag."""
    key = node_image_key(ctx, bins)
    tag = f"ephemera.local/kind-node:{ctx.v['kubernetes']}-{key}"
    out = ctx.bin_dir("kind-node", f"{ctx.v['kubernetes']}-{key}")
    done = out / "images.json"
    if not done.exists():
        t0 = time.time()
        work = ctx.cache_root() / "build" / "kind-node"
        if work.exists():
            shutil.rmtree(work)
        rootfs = work / "rootfs"
        work.mkdir(parents=True)
        partial = out.with_name(out.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        rootfs.mkdir()
        subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-x", "-f",
                        str(rootfs_tar(ctx))], check=True)
        ctx.log(f"node rootfs ready ({time.time() - t0:.0f}s)")
        t1 = time.time()
        images, pre = pod_images(ctx, bins, rootfs, partial, work)
        ctx.log(f"pod images built ({time.time() - t1:.0f}s)")
        t1 = time.time()
        lay_out_node(ctx, rootfs, bins)
        preload(ctx, rootfs, [images[t] for t in sorted(pre)], work)
        ctx.log(f"control-plane images preloaded ({time.time() - t1:.0f}s)")
        t1 = time.time()
        node_tar = partial / "node.tar"
        with open(node_tar, "wb") as f:
            subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=f,
                           check=True)
        import_node(ctx, node_tar, tag)
        node_tar.unlink()
        ctx.run(["docker", "save", "-o", str(partial / "node-image.tar"), tag])
        ctx.log(f"node image {tag} made ({time.time() - t1:.0f}s)")
        index = {"node": tag, "images": {t: p.name for t, p in images.items() if t not in pre}}
        (partial / "images.json").write_text(json.dumps(index, indent=1))
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
        shutil.rmtree(work, ignore_errors=True)
        ctx.log(f"kind node image built in {time.time() - t0:.0f}s")
    index = json.loads(done.read_text())
    t0 = time.time()
    if not docker_has(index["node"]):
        ctx.run(["docker", "load", "-i", str(out / "node-image.tar")], capture=True)
    # Pod images keep their names across builds (the manifests use them), so a tag in docker
    # may be an older build: load them every time (they are small).
    for name in index["images"].values():
        ctx.run(["docker", "load", "-i", str(out / name)], capture=True)
    ctx.log(f"images present in docker ({time.time() - t0:.0f}s)")
    return index["node"], {t: out / name for t, name in index["images"].items()}


def import_node(ctx, node_tar, tag):
    # `docker import` takes no STOPSIGNAL; kind removes nodes with `docker rm -f`, so none is needed.
    changes = ['ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]', "ENV container=docker"]
    cmd = ["docker", "import"]
    for c in changes:
        cmd += ["--change", c]
    ctx.run(cmd + [str(node_tar), tag], capture=True)
