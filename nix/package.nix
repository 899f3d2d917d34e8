# The worker as a static musl binary for `target`, built with crane, its SBOM, and the
# pieces the checks reuse: the toolchain-bound crane library, the source and the
# dependency build.
#
# `pkgs` decides where the build runs: native pkgs for the build machine's own
# architecture, a pkgsCross set for another one (crane then sets the cross linker).
# Tools that run during the build come from `pkgs.buildPackages`, the build machine's.
{
  crane,
  pkgs,
  target,
}:
let
  # The Rust of `rust-toolchain.toml` with its components, plus the musl target, in
  # rust-overlay's minimal profile: the default one adds rust-docs and a cargo wrapped
  # with libsecret, which nothing here uses. The target stays out of that file because
  # rustup would try to download it for every developer.
  craneLib = (crane.mkLib pkgs).overrideToolchain (
    p:
    p.rust-bin.fromRustupToolchain (
      (pkgs.lib.importTOML ../rust-toolchain.toml).toolchain
      // {
        profile = "minimal";
        targets = [ target ];
      }
    )
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
      # As nixpkgs' buildRustPackage does: `cargo auditable` embeds the locked dependency
      # list in the binary, for `cargo audit bin`, trivy, grype and syft. The profile is
      # named here: crane's cargoWithProfile would put --release before `build`.
      cargoBuildCommand = "cargo auditable build --release";
      nativeBuildInputs = [ pkgs.buildPackages.cargo-auditable ];
    }
  );

  # The CycloneDX SBOM of the binary's crates, as scripts/sbom makes it: only `target`'s
  # dependencies, no dev-dependencies, no random serial number or timestamp, and the
  # build directory read as /counter-worker.
  sbom = craneLib.mkCargoDerivation (
    commonArgs
    // {
      # Reads Cargo metadata and the vendored sources; builds nothing.
      cargoArtifacts = null;
      doInstallCargoArtifacts = false;
      pnameSuffix = "-sbom";
      nativeBuildInputs = [
        pkgs.buildPackages.cargo-cyclonedx
        pkgs.buildPackages.jq
      ];
      buildPhaseCargoCommand = ''
        cargo cyclonedx --format json --describe binaries --target ${target}
      '';
      installPhaseCommand = ''
        mkdir -p $out
        sed "s|path+file://$(pwd -P)|path+file:///counter-worker|g" counter-worker_bin.cdx.json |
          jq 'del(.serialNumber, .metadata.timestamp)' >$out/counter-worker.cdx.json
      '';
    }
  );
}
