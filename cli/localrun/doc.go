// Package localrun runs an ECS Fargate task definition on this machine with
// Podman, the way Fargate would: one pod per task (one shared network
// namespace, like awsvpc), each container with its image, entryPoint and
// command, environment, volumesFrom, dependsOn order and conditions, Linux
// capabilities, port mappings published on 127.0.0.1 and essential
// semantics, and a clean teardown (no pod, container, volume or network
// namespace is left behind).
//
// Podman runs with a containers.conf the package writes (CONTAINERS_CONF):
// the runc runtime, cgroupfs, and explicit ulimits no higher than this
// process's hard limits. The pod's network is slirp4netns with
// allow_host_loopback=true, so HostLoopback (10.0.2.2) inside the pod is the
// host's 127.0.0.1: loopback console URLs are rewritten to it.
package localrun
