"""GraphQL enums: the core and service vocabularies, registered once."""

from __future__ import annotations

import strawberry

from core.misfire import Catchup as _Catchup
from core.overlap import Completion as _Completion
from core.overlap import OverlapPolicy as _OverlapPolicy
from core.rules import DstGap as _DstGap
from core.rules import DstRepeat as _DstRepeat
from core.rules import ScheduleType as _ScheduleType
from core.states import ExecutionStatus as _ExecutionStatus
from core.states import ReportStatus as _ReportStatus
from services.schemas import BulkOperationKind as _BulkOperationKind
from services.schemas import DeliveryMode as _DeliveryMode
from services.schemas import ScheduleStatus as _ScheduleStatus

ScheduleType = strawberry.enum(_ScheduleType, name="ScheduleType")
ScheduleStatus = strawberry.enum(_ScheduleStatus, name="ScheduleStatus")
DstGap = strawberry.enum(_DstGap, name="DstGap")
DstRepeat = strawberry.enum(_DstRepeat, name="DstRepeat")
Catchup = strawberry.enum(_Catchup, name="Catchup")
DeliveryMode = strawberry.enum(_DeliveryMode, name="DeliveryMode")
ExecutionStatus = strawberry.enum(_ExecutionStatus, name="ExecutionStatus")
BulkOperation = strawberry.enum(_BulkOperationKind, name="BulkOperation")
Completion = strawberry.enum(_Completion, name="Completion")
OverlapPolicy = strawberry.enum(_OverlapPolicy, name="OverlapPolicy")
ReportStatus = strawberry.enum(_ReportStatus, name="ReportStatus")
