"""Obtaining LAMMPS: source resolution, checksum refusal and the cache key (no LAMMPS needed)."""

from __future__ import annotations

import io
import tarfile

import pytest

from lammps_al.build import lammps as builder
from lammps_al.build import source
from lammps_al.core.errors import SourceError


def make_tree(root):
    (root / "cmake").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "cmake" / "CMakeLists.txt").write_text("project(lammps)\n")
    (root / "src" / "version.h").write_text('#define LAMMPS_VERSION "4 Feb 2025"\n')
    return root


def test_default_source_is_debian_with_pinned_checksum(monkeypatch):
    monkeypatch.delenv(source.SOURCE_ENV, raising=False)
    spec = source.resolve_source(None)
    assert spec.kind == "debian"
    assert spec.digest == "3671165bd52fad36734e0a9136c5bc5ecb225e03988f8c89aa13366a8b53b1c7"


def test_user_tree_from_environment(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "lammps")
    monkeypatch.setenv(source.SOURCE_ENV, str(tree))
    spec = source.resolve_source(None)
    assert spec.kind == "tree" and spec.path == tree


def test_tree_hash_follows_content(tmp_path):
    tree = make_tree(tmp_path / "lammps")
    before = source.hash_tree(tree)
    (tree / "src" / "pair_new.cpp").write_text("// new style\n")
    assert source.hash_tree(tree) != before


def test_missing_source_names_both_ways_to_provide_one(tmp_path):
    with pytest.raises(SourceError) as err:
        source.resolve_source(str(tmp_path / "nowhere"))
    message = str(err.value)
    assert "nowhere" in message and source.SOURCE_ENV in message and "Debian" in message


def test_directory_that_is_not_lammps_is_refused(tmp_path):
    with pytest.raises(SourceError, match="not a LAMMPS source tree"):
        source.resolve_source(str(tmp_path))


def test_checksum_mismatch_refuses_and_moves_the_file_aside(tmp_path):
    tarball = tmp_path / source.DEBIAN_TARBALL
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tf:
        info = tarfile.TarInfo("lammps/README")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"hello"))
    tarball.write_bytes(buf.getvalue())
    with pytest.raises(SourceError, match="checksum mismatch.*Refusing to build"):
        source.verify_tarball(tarball, source.DEBIAN_SHA256)
    assert not tarball.exists()
    assert (tmp_path / (source.DEBIAN_TARBALL + ".bad-checksum")).exists()


def test_user_tarball_without_lammps_inside_is_refused(tmp_path):
    tarball = tmp_path / "other.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        info = tarfile.TarInfo("other/README")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    spec = source.resolve_source(str(tarball))
    assert spec.kind == "tarball"
    with pytest.raises(SourceError, match="does not contain a LAMMPS source tree"):
        source.unpack(spec, tmp_path / "work", tmp_path / "dl", log=lambda text: None)


def test_cache_key_changes_with_options_and_patches(tmp_path, monkeypatch):
    monkeypatch.delenv(source.SOURCE_ENV, raising=False)
    monkeypatch.setenv("LAMMPS_AL_CACHE", str(tmp_path / "cache"))
    base = builder.plan_build()
    assert builder.plan_build().key == base.key  # stable
    assert base.cache_dir.parent == tmp_path / "cache"
    assert builder.plan_build(extra_options={"PKG_KSPACE": "on"}).key != base.key
    patch_dir = tmp_path / "patches"
    patch_dir.mkdir()
    (patch_dir / "0001-test.patch").write_text("--- a/x\n+++ b/x\n")
    monkeypatch.setattr(builder, "PATCH_DIR", patch_dir)
    assert builder.plan_build().key != base.key
