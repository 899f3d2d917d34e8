# The shipped image, end to end, in a NixOS VM: Docker loads the real archive and runs it
# against Redis; the counter must reach 3, and `docker stop` must end the worker cleanly.
{ pkgs, image }:
let
  redis-cli = "${pkgs.redis}/bin/redis-cli";
in
pkgs.testers.runNixOSTest {
  name = "counter-worker-image";

  nodes.machine = {
    virtualisation.docker.enable = true;
    # Listens on 127.0.0.1:6379.
    services.redis.servers."".enable = true;
  };

  testScript = ''
    machine.wait_for_unit("redis")
    machine.wait_for_open_port(6379)
    machine.wait_for_unit("sockets.target")

    machine.succeed("docker load --input='${image}'")

    with subtest("the image is distroless and non-root"):
        machine.fail("docker run --rm --entrypoint /bin/sh counter-worker:latest -c true")
        user = machine.succeed("docker image inspect -f '{{.Config.User}}' counter-worker:latest")
        assert user.strip() == "65532:65532", f"image user is {user.strip()!r}"

    with subtest("the worker counts in Redis"):
        # Host networking: Redis listens on the VM's loopback, which a bridged container
        # cannot reach.
        machine.succeed(
            "docker run -d --name w --network host"
            " -e REDIS_URL=redis://127.0.0.1:6379 counter-worker:latest"
        )
        machine.wait_until_succeeds("test \"$(${redis-cli} GET contador)\" -ge 3")
        pid = machine.succeed("docker inspect -f '{{.State.Pid}}' w").strip()
        uid = machine.succeed(f"ps -o uid= -p {pid}").strip()
        assert uid == "65532", f"worker runs as uid {uid}"

    with subtest("SIGTERM stops the worker with exit code 0"):
        # No --rm: the stopped container keeps its exit code for inspection.
        machine.succeed("docker stop w")
        code = machine.succeed("docker inspect -f '{{.State.ExitCode}}' w").strip()
        assert code == "0", f"worker exited with {code}"
  '';
}
