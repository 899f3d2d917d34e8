# Everything `nix flake check` runs in the build sandbox, each a derivation of its own so
# that a lint failure blocks CI without blocking a build of the worker.
{
  pkgs,
  crate,
  advisory-db,
}:
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
      # Its output is the test verdict; the target directory would be a copy nobody reads.
      doInstallCargoArtifacts = false;
      # The integration tests start their own redis-server on a free loopback port,
      # which the sandbox allows; the cluster tests join nodes with redis-cli, and the TLS
      # tests make their certificates with openssl.
      nativeBuildInputs = (commonArgs.nativeBuildInputs or [ ]) ++ [
        pkgs.redis
        pkgs.openssl
      ];
    }
  );

  # The official formatter (RFC 166) and deadnix, as scripts/check-nix runs them outside
  # Nix, where crates.io's nixfmt_rs stands in for nixfmt with the same output.
  nix-fmt =
    pkgs.runCommand "nix-fmt"
      {
        nativeBuildInputs = [
          pkgs.nixfmt
          pkgs.deadnix
        ];
      }
      ''
        cd ${pkgs.lib.sources.sourceFilesBySuffices ../. [ ".nix" ]}
        find . -name '*.nix' -exec nixfmt --check {} +
        deadnix --fail .
        touch $out
      '';
}
