"""
The demo: relocator's main job on two local registries, start to finish.

Starts a "public" source registry and a "private" destination registry on 127.0.0.1,
pushes sample images (apps sharing base layers, a multi-platform index), then runs the
seed workflow with the real command line: resolve -> relocate -> pkg -> unpkg, with
live progress, and shows where everything landed. Run through `scripts/demo`.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.rule import Rule

from tests.support import Blob, Registry, image, index, push, running_registry

MiB = 1024 * 1024
console = Console(stderr=True, highlight=False)


def main() -> int:
    """Run the demo; the exit code is the first failing step's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--size", type=int, default=40, help="MiB of the largest app layer (default 40)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relocator-demo-"))
    try:
        with running_registry(work / "public") as public, running_registry(
            work / "private"
        ) as private:
            return _run(work, public, private, args.size * MiB)
    finally:
        if args.keep:
            console.print(f"[dim]work directory kept: {work}[/dim]")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run(work: Path, public: Registry, private: Registry, big: int) -> int:
    console.print(Rule("relocator demo"))
    console.print(f"public registry  (the source):      {public.host}")
    console.print(f"private registry (the destination): {private.host}")
    manifest = _seed(work, public, big)
    lock, copied = work / "app.lock", work / "app.lock.copied"
    tarball, imported = work / "images.tar", work / "app.lock.imported"
    flags = ["--registry-insecure", public.host, "--registry-insecure", private.host]
    steps = [
        ("resolve tags to digests and write a lock file",
         ["resolve", "-f", str(manifest), "--lock-output", str(lock)]),
        ("relocate every image into one private repository",
         ["relocate", "-f", str(lock), "-r", f"{private.host}/mirror/app",
          "--lock-output", str(copied)]),
        ("the manifest with relocated references (no registry contacted)",
         ["-f", str(manifest), "-f", str(copied)]),
        ("package every image into one tarball, each blob once",
         ["pkg", "-f", str(lock), "-o", str(tarball)]),
        ("import the tarball on the air-gapped side",
         ["unpkg", "-f", str(lock), "-i", str(tarball), "-r", f"{private.host}/airgap/app",
          "--lock-output", str(imported)]),
    ]
    for title, argv in steps:
        code = _step(title, argv, flags, work)
        if code != 0:
            return code
    console.print(Rule("where everything landed"))
    for name in ("app.yml", "app.lock", "app.lock.copied", "app.lock.imported"):
        console.print(f"{name:20} {work / name}")
    size = tarball.stat().st_size / 1_000_000
    console.print(f"{'images.tar':20} {tarball} ({size:.0f} MB)")
    console.print(f"{'relocated images':20} {private.host}/mirror/app@sha256:...")
    console.print(f"{'imported images':20} {private.host}/airgap/app@sha256:...")
    return 0


def _seed(work: Path, public: Registry, big: int) -> Path:
    """Push sample images to the public registry; write the app's manifest."""
    console.print(Rule("pushing sample images to the public registry"))
    started = time.monotonic()
    base = [Blob.random("demo/base/os", 24 * MiB), Blob.random("demo/base/runtime", 12 * MiB)]
    apps = {
        "web": (big,),
        "api": (big // 2, 4 * MiB),
        "worker": (big // 3,),
        "cron": (2 * MiB,),
    }
    documents = []
    with public.client() as client:
        for name, sizes in apps.items():
            img = image(f"demo/{name}", layer_sizes=sizes, base_layers=base)
            push(client, f"demo/{name}", img, tag="1.0")
            documents.append(_deployment(name, f"{public.host}/demo/{name}:1.0"))
        platforms = index([
            image(f"demo/proxy/{arch}", layer_sizes=(6 * MiB,), platform=f"linux/{arch}")
            for arch in ("amd64", "arm64", "ppc64le")
        ])
        push(client, "demo/proxy", platforms, tag="2.4")
        documents.append(_deployment("proxy", f"{public.host}/demo/proxy:2.4"))
    manifest = work / "app.yml"
    manifest.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    console.print(
        f"pushed 5 images (one of them a 3-platform index) in "
        f"{time.monotonic() - started:.1f}s; the app's manifest is {manifest.name}"
    )
    return manifest


def _deployment(name: str, ref: str) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": name, "image": ref}]}}},
    }


def _step(title: str, argv: list[str], flags: list[str], work: Path) -> int:
    console.print(Rule(title))
    command = [str(Path(sys.executable).with_name("relocator")), *argv, *flags]
    shown = " ".join(shlex.quote(a.replace(str(work) + "/", "")) for a in ["relocator", *argv])
    console.print(f"[bold]$ {shown}[/bold]")
    result = subprocess.run(command, cwd=work, check=False)
    if result.returncode != 0:
        console.print(f"[red]step failed with exit code {result.returncode}[/red]")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
