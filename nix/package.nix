# The worker as a static musl binary for `target`, built with crane, plus the pieces the
# checks reuse: the toolchain-bound crane library, the source and the dependency build.
#
# `pkgs` decides where the build runs: native pkgs for the build machine's own
# architecture, a pkgsCross set for another one (crane then sets the cross linker).
{ crane, pkgs, target }:
let
  # The same Rust as `rust-toolchain.toml`, plus the musl target. The target stays out of
  # that file because rustup would try to download it for every developer.
  craneLib = (crane.mkLib pkgs).overrideToolchain (
    p:
    (p.rust-bin.fromRustupToolchainFile ../rust-toolchain.toml).override (old: {
      targets = old.targets ++ [ target ];
    })
  );

  # Only Rust and Cargo files: editing the README or the Nix code rebuilds nothing.
  src = craneLib.cleanCargoSource ../.;

  # Shared by every derivation, so the dependency build below is reused by all of them;
  # any difference in target or flags would rebuild the dependencies.
  commonArgs = {
    inherit src;
    strictDeps = true;
    CARGO_BUILD_TARGET = target;
    CARGO_BUILD_RUSTFLAGS = "-C target-feature=+crt-static";
  };

  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
in
{
  inherit
    craneLib
    src
    commonArgs
    cargoArtifacts
    ;

  worker = craneLib.buildPackage (
    commonArgs
    // {
      inherit cargoArtifacts;
      # The tests run once, in the nextest check, not again in every build.
      doCheck = false;
    }
  );
}
