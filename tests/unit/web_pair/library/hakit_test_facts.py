#!/usr/bin/python
# A facts module for the unit tests: each fake host's interpreter wrapper sets HAKIT_TEST_HOST,
# and the facts come from the JSON file in HAKIT_TEST_FACTS, so playbooks can validate hosts
# with connection=local that look like lab nodes (their own uname -n, interfaces, addresses).
import json
import os

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    with open(os.environ["HAKIT_TEST_FACTS"]) as handle:
        facts = json.load(handle)[os.environ["HAKIT_TEST_HOST"]]
    module.exit_json(ansible_facts=facts)


if __name__ == "__main__":
    main()
