{
  description = "counter-worker: INCR a Redis key on a fixed schedule, shipped as a static binary in a distroless image";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

    # crane has no inputs of its own, so there is nothing for it to follow.
    crane.url = "github:ipetkov/crane";

    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };

    advisory-db = {
      url = "github:rustsec/advisory-db";
      flake = false;
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      crane,
      rust-overlay,
      advisory-db,
    }:
    let
      inherit (nixpkgs) lib;

      # The systems we build on, each with what Rust and OCI call the platform the worker
      # is built for there: musl, linked statically, so that the image needs no libc.
      platforms = {
        x86_64-linux = {
          target = "x86_64-unknown-linux-musl";
          architecture = "amd64";
        };
        aarch64-linux = {
          target = "aarch64-unknown-linux-musl";
          architecture = "arm64";
        };
      };

      # Everything one build system produces; the outputs below only pick from it.
      build =
        system: platform:
        let
          pkgs = import nixpkgs {
            inherit system;
            overlays = [ rust-overlay.overlays.default ];
          };

          imageOf =
            worker: architecture: tag:
            import ./nix/image.nix {
              inherit
                pkgs
                worker
                architecture
                tag
                ;
              revision = self.rev or null;
            };

          crate = import ./nix/package.nix {
            inherit crane pkgs;
            inherit (platform) target;
          };
          # What Compose runs: the image of the machine's own architecture.
          image = imageOf crate.worker platform.architecture "latest";

          # arm64 from an x86_64 machine with no arm64 builder: only the worker is
          # cross-compiled (crane sets the cross linker); the image needs no arm64 code.
          # Its own tag, so that loading it beside the amd64 image replaces nothing.
          crateAarch64 = import ./nix/package.nix {
            inherit crane;
            pkgs = pkgs.pkgsCross.aarch64-multiplatform-musl;
            inherit (platforms.aarch64-linux) target;
          };
          imageAarch64 = imageOf crateAarch64.worker platforms.aarch64-linux.architecture "latest-arm64";

          # An image as scripts/push-image signs and attests it (scripts/build-image --output
          # writes the same for the cargo image): the archive, its SBOM and, from a committed
          # tree only, its provenance, made by the same script.
          attestable =
            image: sbom: command:
            pkgs.runCommand "counter-worker-attestable" { nativeBuildInputs = [ pkgs.jq ]; } ''
              mkdir $out
              ln -s ${image.archive} $out/image.tar
              ln -s ${sbom}/counter-worker.cdx.json $out/sbom.cdx.json
              ${lib.optionalString (self ? rev) ''
                ${pkgs.runtimeShell} ${./scripts/provenance} nix "${command}" ${self.rev} ${self} > $out/provenance.json
              ''}
            '';

          # Both images to a registry: each under TAG-<arch>, and an index under TAG; signed
          # and attested with --key FILE or --keyless.
          push = pkgs.writeShellApplication {
            name = "push-counter-worker";
            runtimeInputs = [
              pkgs.skopeo
              pkgs.jq
              pkgs.gzip
              pkgs.cosign
            ];
            text = ''
              exec ${pkgs.runtimeShell} ${./scripts/push-image} "$@" \
                ${attestable image crate.sbom "nix build .#image"} \
                ${attestable imageAarch64 crateAarch64.sbom "nix build .#image-aarch64"}
            '';
          };
        in
        {
          inherit pkgs crate image;
          checks = import ./nix/checks.nix { inherit pkgs crate advisory-db; };

          multiArch = lib.optionalAttrs (system == "x86_64-linux") {
            packages = {
              worker-aarch64 = crateAarch64.worker;
              image-aarch64 = imageAarch64.archive;
            };
            apps.push = {
              type = "app";
              program = "${push}/bin/push-counter-worker";
              meta.description = "Push the amd64 and arm64 images and their index: push -- [--insecure] [--key FILE | --keyless] REGISTRY/REPO:TAG";
            };
          };
        };

      perSystem = lib.mapAttrs build platforms;
      forAllSystems = f: lib.mapAttrs (_: f) perSystem;
    in
    {
      packages = forAllSystems (
        s:
        {
          default = s.crate.worker;
          worker = s.crate.worker;
          image = s.image.archive;
          sbom = s.crate.sbom;
        }
        // s.multiArch.packages or { }
      );

      checks = forAllSystems (
        s:
        s.checks
        // {
          image-vm = import ./nix/vm-test.nix {
            inherit (s) pkgs;
            image = s.image.archive;
          };
        }
      );

      apps = forAllSystems (
        s:
        {
          default = {
            type = "app";
            program = "${s.crate.worker}/bin/counter-worker";
            meta.description = "Run the worker; settings come from the environment (see --help)";
          };
          load-image = {
            type = "app";
            program = "${s.image.load}";
            meta.description = "Build the image and load it into Docker as counter-worker:latest";
          };
        }
        // s.multiArch.apps or { }
      );

      # Inherits the inputs of every check but the VM test, which would put a VM in the shell.
      devShells = forAllSystems (s: {
        default = import ./nix/shell.nix { inherit (s) pkgs crate checks; };
      });

      # `nix fmt`: the official formatter on every .nix file of the tree, through treefmt.
      formatter = forAllSystems (s: s.pkgs.nixfmt-tree);
    };
}
