"""The same checks two ways, as the task lines of a play (bench/checks.sh, bench/fanout.sh):

- as users write them today: a `wait_for` per port, a `uri` per URL, and for units one
  `service_facts` with an `assert`;
- as one `hx.reliability.health_check` task.
"""

import json


def checks_as_tasks(ports, urls, units):
    """(today's task lines, the one health_check task line) for PORTS, URLS and UNITS."""
    today = [f"    - ansible.builtin.wait_for: {{host: 127.0.0.1, port: {n}, timeout: 5}}\n" for n in ports]
    today += [f"    - ansible.builtin.uri: {{url: '{u}', return_content: false}}\n" for u in urls]
    ours = {"ports": [{"host": "127.0.0.1", "port": n} for n in ports], "http": [{"url": u} for u in urls]}
    if units:
        today.append("    - ansible.builtin.service_facts:\n")
        cond = ", ".join(f"\"ansible_facts.services['{u}'].state == 'running'\"" for u in units)
        today.append(f"    - ansible.builtin.assert: {{that: [{cond}], quiet: true}}\n")
        ours["services"] = [{"name": u} for u in units]
    return "".join(today), f"    - hx.reliability.health_check: {json.dumps(ours)}\n"
