"""The conformance suite: one behaviour per check, each tied to REQUIREMENTS.md IDs.

Run it on a driver with ``pytest --pyargs wddm_conformance.suite --driver=module:Class``
(in this repository plain ``pytest`` runs it on the reference driver). Every check names
the requirement IDs it checks with ``@pytest.mark.requirement(...)``; a failure names the
ID the driver broke. Checks test the contract in ``docs/INTERPRETING.md``, never the
reference driver's incidental choices: programs reach the driver through its own command
encoder, and memory is compared with the harness's model of what the program means.
"""
