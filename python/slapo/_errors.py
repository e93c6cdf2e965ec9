"""Status codes (include/slapo/slapo.h) and the exception that carries them."""

import enum


class Status(enum.IntEnum):
    """SlapoStatus values; `Status.SHAPE_MISMATCH == 2`."""

    OK = 0
    INVALID_ARGUMENT = 1
    SHAPE_MISMATCH = 2
    DTYPE_MISMATCH = 3
    DEVICE_MISMATCH = 4
    NOT_FOUND = 5
    MISSING_PARAMS = 6
    IO = 7
    FORMAT = 8
    UNSUPPORTED = 9
    OUT_OF_MEMORY = 10
    DEVICE = 11
    DEVICE_LOST = 12
    ABI_MISMATCH = 13
    CANCELLED = 14
    BUSY = 15
    INTERNAL = 16


def status_name(code):
    """'SLAPO_SHAPE_MISMATCH' for 2, as the library's status_name()."""
    try:
        return "SLAPO_" + Status(code).name
    except ValueError:
        return "SLAPO_UNKNOWN"


class SlapoError(Exception):
    """A failed call: the library's last error, or the same kinds of error
    found by this package before calling it.

    code         a Status (an int)
    status_name  'SLAPO_SHAPE_MISMATCH', ...
    message      one line, as the library wrote it
    object_name  the input, output, parameter or file at fault, or ''
    device_error the CUDA error number for DEVICE errors, else 0
    """

    def __init__(self, code, message, object_name="", device_error=0):
        try:
            code = Status(code)
        except ValueError:
            pass
        self.code = code
        self.status_name = status_name(code)
        self.message = message
        self.object_name = object_name or ""
        self.device_error = device_error
        super().__init__("%s: %s" % (self.status_name, message))
