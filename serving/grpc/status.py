"""gRPC's status codes (the gRPC project's ``statuscodes.md``), the numbers a call's ``grpc-status`` carries.

Ours rather than ``grpc.StatusCode``: the server does not import grpcio (17 MiB of resident memory for a module
it would use only for this table); clients compare the numbers, which are the protocol's.
"""

from __future__ import annotations

from enum import IntEnum


class StatusCode(IntEnum):
    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16
