"""Error types the CLI turns into one line and exit status 2.

A UserError is something the user can fix: a bad lab file, a missing tool, a daemon that is not
running. Its message is the whole line the user sees, so it must name the field or the command and
say why. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input or a missing prerequisite: printed as one line, exit status 2."""

    exit_status = 2


class LabError(UserError):
    """The lab file is invalid. The message starts with the field path."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class StepError(Exception):
    """A deployment step failed on a machine.

    Carries what a trainee needs to see why: the step, the machine, the command, and the tail of
    the unit's journal.
    """

    def __init__(self, step: str, machine: str, command: str, detail: str, journal: str = ""):
        self.step = step
        self.machine = machine
        self.command = command
        self.detail = detail
        self.journal = journal
        msg = f"[{step} > {machine}] `{command}` failed: {detail}"
        if journal:
            msg += "\n--- journal tail ---\n" + journal
        super().__init__(msg)


class ProviderError(Exception):
    """A provider's own command failed (vagrant, docker, ...): the message names the lab, the
    command and the tail of its output. Printed as it is, exit status 1."""
