#!/usr/bin/env python3
"""Writes the bundled cluster snapshots, in the shape kubectl prints them.

  eks-hybrid/cluster.json   kubectl get nodes,pods -A -o json   (one v1 List)
  ack-zones/nodes.json      kubectl get nodes -o json
  ack-zones/pods.json       kubectl get pods -A -o json

Deterministic: running it again gives the same files.
"""

import json
import os
import random
from datetime import datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class Gen:
    def __init__(self, seed):
        self.rnd = random.Random(seed)

    def suffix(self, n=5):
        return "".join(self.rnd.choice(ALPHABET) for _ in range(n))

    def uid(self):
        h = "%032x" % self.rnd.getrandbits(128)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"

    def ip(self, prefix):
        return f"{prefix}.{self.rnd.randint(2, 250)}"


def node(name, labels, created, ip, g):
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
            "creationTimestamp": ts(created),
            "labels": labels,
            "name": name,
            "resourceVersion": str(g.rnd.randint(100000, 999999)),
            "uid": g.uid(),
        },
        "spec": {"providerID": f"aws:///{name}"},
        "status": {
            "addresses": [
                {"address": ip, "type": "InternalIP"},
                {"address": name, "type": "Hostname"},
            ],
            "allocatable": {"cpu": "3920m", "memory": "14902Mi", "pods": "58"},
            "capacity": {"cpu": "4", "memory": "15992Mi", "pods": "58"},
            "conditions": [
                {
                    "lastHeartbeatTime": ts(created + timedelta(days=20)),
                    "lastTransitionTime": ts(created + timedelta(seconds=40)),
                    "message": "kubelet is posting ready status",
                    "reason": "KubeletReady",
                    "status": "True",
                    "type": "Ready",
                }
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "containerRuntimeVersion": "containerd://1.7.27",
                "kubeletVersion": "v1.32.3",
                "operatingSystem": "linux",
                "osImage": "Amazon Linux 2023.7.20250414",
            },
        },
    }


def pod(g, *, namespace, name, owner, labels, node_name, created, scheduled,
        ready_after=8, phase="Running", priority=0, priority_class=None,
        annotations=None, restarts=0, image="registry.example.com/shop/web:1.14.2",
        node_selector=None, affinity=None, deleting=None):
    meta = {
        "creationTimestamp": ts(created),
        "generateName": name.rsplit("-", 1)[0] + "-",
        "labels": labels,
        "name": name,
        "namespace": namespace,
        "resourceVersion": str(g.rnd.randint(100000, 999999)),
        "uid": g.uid(),
    }
    if annotations:
        meta["annotations"] = annotations
    if owner:
        kind, oname, ouid = owner
        meta["ownerReferences"] = [{
            "apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True,
            "kind": kind, "name": oname, "uid": ouid,
        }]
    if deleting:
        meta["deletionGracePeriodSeconds"] = 30
        meta["deletionTimestamp"] = ts(deleting)
    spec = {
        "containers": [{
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "name": "app",
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": priority,
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccount": "default",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
        "tolerations": [
            {"effect": "NoExecute", "key": "node.kubernetes.io/not-ready",
             "operator": "Exists", "tolerationSeconds": 300},
            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable",
             "operator": "Exists", "tolerationSeconds": 300},
        ],
    }
    if priority_class:
        spec["priorityClassName"] = priority_class
    if node_selector:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    status = {"qosClass": "Burstable"}
    if node_name:
        spec["nodeName"] = node_name
        ready = phase == "Running"
        ready_at = scheduled + timedelta(seconds=ready_after)
        status.update({
            "conditions": [
                {"lastProbeTime": None, "lastTransitionTime": ts(scheduled + timedelta(seconds=2)),
                 "status": "True", "type": "PodReadyToStartContainers"},
                {"lastProbeTime": None, "lastTransitionTime": ts(scheduled + timedelta(seconds=1)),
                 "status": "True", "type": "Initialized"},
                {"lastProbeTime": None, "lastTransitionTime": ts(ready_at),
                 "status": "True" if ready else "False", "type": "Ready"},
                {"lastProbeTime": None, "lastTransitionTime": ts(ready_at),
                 "status": "True" if ready else "False", "type": "ContainersReady"},
                {"lastProbeTime": None, "lastTransitionTime": ts(scheduled),
                 "status": "True", "type": "PodScheduled"},
            ],
            "containerStatuses": [{
                "containerID": "containerd://" + "%064x" % g.rnd.getrandbits(256),
                "image": image, "imageID": image + "@sha256:" + "%064x" % g.rnd.getrandbits(256),
                "lastState": {}, "name": "app", "ready": ready, "restartCount": restarts,
                "started": ready,
                "state": {"running": {"startedAt": ts(scheduled + timedelta(seconds=3))}},
            }],
            "hostIP": "10.0.0.1",
            "phase": phase,
            "podIP": g.ip("10.1.7"),
            "startTime": ts(scheduled + timedelta(seconds=1)),
        })
    else:
        status.update({
            "conditions": [{
                "lastProbeTime": None, "lastTransitionTime": ts(scheduled),
                "message": "0/7 nodes are available: 7 Insufficient cpu. preemption: 0/7 nodes are available: 7 No preemption victims found for incoming pod.",
                "reason": "Unschedulable", "status": "False", "type": "PodScheduled",
            }],
            "phase": "Pending",
        })
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def kubectl_list(items):
    return {"apiVersion": "v1", "items": items, "kind": "List",
            "metadata": {"resourceVersion": ""}}


def write(path, doc):
    full = os.path.join(HERE, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        json.dump(doc, f, indent=4)
        f.write("\n")


def eks():
    """One hybrid node holding 8 replicas of shop/web, 7 that burst onto two
    EC2 nodes, kube-system add-ons on every node."""
    g = Gen(1)
    t0 = datetime(2026, 11, 20, 8, 0, 0, tzinfo=timezone.utc)
    hybrid = "mi-0ebe45e33a53e04f2"
    ec2 = ["ip-10-42-108-174.us-west-2.compute.internal",
           "ip-10-42-77-12.us-west-2.compute.internal"]
    nodes = [node(hybrid, {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "eks.amazonaws.com/compute-type": "hybrid",
        "eks.amazonaws.com/hybrid-credential-provider": "ssm",
        "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": hybrid,
        "kubernetes.io/os": "linux", "topology.kubernetes.io/region": "us-west-2",
        "topology.kubernetes.io/zone": "onprem-rack-1"}, t0 - timedelta(days=21), "10.80.146.28", g)]
    for i, (n, zone, zid) in enumerate(zip(ec2, ["us-west-2a", "us-west-2b"], ["usw2-az1", "usw2-az2"])):
        nodes.append(node(n, {
            "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": "m5.large",
            "beta.kubernetes.io/os": "linux", "eks.amazonaws.com/capacityType": "ON_DEMAND",
            "eks.amazonaws.com/nodegroup": "burst", "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": n, "kubernetes.io/os": "linux",
            "node.kubernetes.io/instance-type": "m5.large", "topology.k8s.aws/zone-id": zid,
            "topology.kubernetes.io/region": "us-west-2", "topology.kubernetes.io/zone": zone},
            t0 - timedelta(days=3, hours=i), f"10.42.{108 - 31 * i}.{174 - 50 * i}", g))
    pods = []
    for n in [hybrid] + ec2:
        short = n.split(".")[0]
        for ds, hashv in [("kube-proxy", "7f5d8c9b6"), ("aws-node", "5c8b7d6f4")]:
            created = t0 - timedelta(days=2, minutes=len(pods))
            pods.append(pod(g, namespace="kube-system", name=f"{ds}-{g.suffix()}",
                            owner=("DaemonSet", ds, f"ds-{ds}-uid"),
                            labels={"k8s-app": ds, "controller-revision-hash": hashv,
                                    "pod-template-generation": "1"},
                            node_name=n, created=created, scheduled=created,
                            priority=2000001000, priority_class="system-node-critical",
                            image=f"602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/{ds}:v1.32.0"))
    coredns_rs = ("ReplicaSet", "coredns-6b9575c64c", "3f1c2a7e-5b8d-4e0a-9c61-7d2e4f8a9b10")
    for i in range(2):
        created = t0 - timedelta(days=2, minutes=10 + i)
        pods.append(pod(g, namespace="kube-system", name=f"coredns-6b9575c64c-{g.suffix()}",
                        owner=coredns_rs, labels={"k8s-app": "kube-dns", "pod-template-hash": "6b9575c64c"},
                        node_name=ec2[i], created=created, scheduled=created,
                        priority=2000000000, priority_class="system-cluster-critical",
                        image="602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/coredns:v1.11.4"))
    web_rs = ("ReplicaSet", "web-7d9f8c6b5d", "9d3e7a1c-2f4b-4c8e-a6d0-51b8e3f7c2a9")
    affinity = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 100, "preference": {"matchExpressions": [{
            "key": "eks.amazonaws.com/compute-type", "operator": "In", "values": ["hybrid"]}]}}]}}
    # Scaled from 0 to 15 at 08:00: the first 8 fit on the hybrid node, the
    # rest burst onto EC2, alternating between the two nodes.
    placement = [hybrid] * 8 + [ec2[i % 2] for i in range(7)]
    for i, n in enumerate(placement):
        created = t0 + timedelta(seconds=2 * i)
        pods.append(pod(g, namespace="shop", name=f"web-7d9f8c6b5d-{g.suffix()}", owner=web_rs,
                        labels={"app": "web", "pod-template-hash": "7d9f8c6b5d"},
                        node_name=n, created=created, scheduled=created + timedelta(seconds=1),
                        ready_after=8 + i % 3, affinity=affinity))
    write("eks-hybrid/cluster.json", kubectl_list(nodes + pods))


def ack():
    """Three zones (available_zone i, k, h), one node pool each; shop/web
    with 5/3/1 replicas, shop/api with 2/2/2; a placeholder Deployment per
    zone, two of whose pods real pods preempted (now Pending)."""
    g = Gen(2)
    t0 = datetime(2026, 11, 21, 2, 0, 0, tzinfo=timezone.utc)
    zones = {"i": ["192.168.0.23", "192.168.0.41"], "k": ["192.168.2.17"], "h": ["192.168.4.9"]}
    nodes = []
    by_zone = {}
    for z, ips in zones.items():
        for ip in ips:
            name = f"cn-beijing.{ip}"
            by_zone.setdefault(z, []).append(name)
            nodes.append(node(name, {
                "alibabacloud.com/nodepool-id": f"np-zone-{z}", "available_zone": z,
                "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": "ecs.g7.xlarge",
                "beta.kubernetes.io/os": "linux", "failure-domain.beta.kubernetes.io/region": "cn-beijing",
                "failure-domain.beta.kubernetes.io/zone": f"cn-beijing-{z}", "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "ecs.g7.xlarge", "topology.kubernetes.io/region": "cn-beijing",
                "topology.kubernetes.io/zone": f"cn-beijing-{z}"}, t0 - timedelta(days=5), ip, g))
    pods = []
    # Placeholders: one Deployment per zone, 2 replicas each, created first.
    for z in zones:
        rs = (f"ack-place-holder-{z}-5f7d8b9c4", )
        owner = ("ReplicaSet", f"ack-place-holder-{z}-5f7d8b9c4", f"rs-placeholder-{z}-uid")
        for i in range(2):
            created = t0 - timedelta(hours=3, minutes=10 - i)
            preempted = z in ("i", "k") and i == 1
            pods.append(pod(g, namespace="default", name=f"ack-place-holder-{z}-5f7d8b9c4-{g.suffix()}",
                            owner=owner, labels={"app": "ack-place-holder", "pod-template-hash": "5f7d8b9c4"},
                            node_name=None if preempted else by_zone[z][0], created=created,
                            scheduled=created + timedelta(seconds=1) if not preempted else t0 + timedelta(minutes=1),
                            priority=-1, priority_class="default-priority-class",
                            node_selector={"available_zone": z},
                            image="registry-cn-beijing.ack.aliyuncs.com/acs/pause:3.9"))
    # shop/web bound in this order (zone per binding), 30 s apart.
    web = ("ReplicaSet", "web-58c9d7f6b4", "6a0f3b2d-8c71-4e95-b2a4-0d9e1c7f5a38")
    web_zones = ["i", "i", "k", "i", "k", "h", "i", "k", "i"]
    seen = {}
    for n, z in enumerate(web_zones):
        created = t0 + timedelta(seconds=30 * n)
        k = seen.get(z, 0)
        seen[z] = k + 1
        pods.append(pod(g, namespace="shop", name=f"web-58c9d7f6b4-{g.suffix()}", owner=web,
                        labels={"app": "web", "pod-template-hash": "58c9d7f6b4"},
                        node_name=by_zone[z][k % len(by_zone[z])], created=created,
                        scheduled=created + timedelta(seconds=1)))
    # shop/api: 2 per zone, then one pod deleted and one pending.
    api = ("ReplicaSet", "api-6d4b8f7c9", "c1b7e2a9-4d3f-4a68-9e0b-7f2d5c8a1e46")
    for n, z in enumerate(["h", "k", "i", "h", "k", "i"]):
        created = t0 + timedelta(minutes=10, seconds=20 * n)
        pods.append(pod(g, namespace="shop", name=f"api-6d4b8f7c9-{g.suffix()}", owner=api,
                        labels={"app": "api", "pod-template-hash": "6d4b8f7c9"},
                        node_name=by_zone[z][0], created=created, scheduled=created + timedelta(seconds=1),
                        restarts=1 if n == 0 else 0, image="registry.example.com/shop/api:2.3.0"))
    # A static pod's mirror on one node: never bound through the API.
    created = t0 - timedelta(days=4)
    mirror = pod(g, namespace="kube-system", name=f"node-exporter-{by_zone['k'][0]}", owner=None,
                 labels={"app": "node-exporter"}, node_name=by_zone["k"][0], created=created,
                 scheduled=created, image="registry.example.com/node-exporter:1.8.2",
                 annotations={"kubernetes.io/config.mirror": "7c1e5f3a9b2d4e6f8a0c1b3d5e7f9a2c",
                              "kubernetes.io/config.source": "file"})
    mirror["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "controller": True, "kind": "Node",
                                             "name": by_zone["k"][0], "uid": "node-uid"}]
    pods.append(mirror)
    write("ack-zones/nodes.json", kubectl_list(nodes))
    write("ack-zones/pods.json", kubectl_list(pods))


if __name__ == "__main__":
    eks()
    ack()
