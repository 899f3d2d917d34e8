# Everything `nix flake check` runs in the build sandbox, each a derivation of its own so
# that a lint failure blocks CI without blocking a build of the worker.
{ pkgs, crate, advisory-db }:
let
  inherit (crate)
    craneLib
    src
    commonArgs
    cargoArtifacts
    ;
in
{
  inherit (crate) worker;

  clippy = craneLib.cargoClippy (
    commonArgs
    // {
      inherit cargoArtifacts;
      cargoClippyExtraArgs = "--all-targets -- --deny warnings";
    }
  );

  doc = craneLib.cargoDoc (
    commonArgs
    // {
      inherit cargoArtifacts;
      env.RUSTDOCFLAGS = "--deny warnings";
    }
  );

  fmt = craneLib.cargoFmt { inherit src; };

  # Reproducible: a new advisory fails this only when flake.lock's advisory-db moves.
  audit = craneLib.cargoAudit { inherit src advisory-db; };

  # bans, licenses and sources, as set in deny.toml.
  deny = craneLib.cargoDeny { inherit src; };

  nextest = craneLib.cargoNextest (
    commonArgs
    // {
      inherit cargoArtifacts;
      partitions = 1;
      partitionType = "count";
      # The integration tests start their own redis-server on a free loopback port,
      # which the sandbox allows.
      nativeBuildInputs = (commonArgs.nativeBuildInputs or [ ]) ++ [ pkgs.redis ];
    }
  );

  # The same tools and versions as scripts/check-nix runs outside Nix.
  nix-fmt =
    pkgs.runCommand "nix-fmt"
      {
        nativeBuildInputs = [
          pkgs.nixpkgs-fmt
          pkgs.deadnix
        ];
      }
      ''
        cd ${pkgs.lib.sources.sourceFilesBySuffices ../. [ ".nix" ]}
        nixpkgs-fmt --check .
        deadnix --fail .
        touch $out
      '';
}
