"""Every lab host converged: the package came through the proxy and the hosts see each other."""

import os

import pytest
import testinfra
import testinfra.utils.ansible_runner

# Molecule's inventory directory holds its own file and the link to the scenario's lab inventory.
INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
HOSTS = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("smoke")
LAN = {"ns1": "10.77.1.11", "ns2": "10.77.1.12", "vm1": "10.77.1.21"}


@pytest.fixture(params=HOSTS)
def host(request):
    return testinfra.get_host(f"ansible://{request.param}", ansible_inventory=INVENTORY)


def test_hello_installed_through_the_role_path(host):
    assert host.package("hello").is_installed
    assert host.run("hello").stdout.strip() == "Hello, world!"


def test_hostname_is_the_inventory_name(host):
    name = host.backend.get_hostname()
    assert host.file("/root/who").content_string.split()[0] == name


def test_every_host_reaches_every_other_on_the_lan(host):
    me = host.backend.get_hostname()
    for other, address in LAN.items():
        if other != me:
            assert host.run(f"ping -c1 -W2 {address}").rc == 0, f"{me} -> {other}"
