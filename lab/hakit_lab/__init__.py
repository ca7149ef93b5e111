"""hakit-lab: real test hosts (namespace hosts and qemu VMs) built from an Ansible inventory."""
