"""Every model, in one list: used by the migration generator and by tests.

To change the schema: change the model, then `make migration NAME=what_changed`, which
writes the next numbered file in migrations/ from the difference between the models
and a database migrated to the latest version. Read it, then commit it.
"""

from app.domain.api_keys import ApiKey
from app.domain.audit import AuditEvent
from app.domain.corrections import Correction
from app.domain.council import CouncilSettings
from app.domain.exports.runs import ExportBatch, ExportedEntry, ExportFileChunk
from app.domain.exports.templates import ExportTemplate
from app.domain.feedback import Feedback
from app.domain.funds import Fund, FundGroup, FundGroupFund
from app.domain.imports.batches import ImportBatch, ImportProblem
from app.domain.imports.rules import ImportRule
from app.domain.imports.templates import ImportTemplate
from app.domain.ledger import LedgerEntry, ReceiptNumber
from app.domain.methods import MethodOfPayment
from app.domain.offices import Office
from app.domain.outbox import OutboxMessage
from app.domain.payments import Payment, PaymentEvent, PaymentItem, WebhookMessage
from app.domain.references import AccountHolder, CheckDigitConfig, ReferenceFormat, ReferenceRule
from app.domain.refunds import Refund
from app.domain.staff_payments import StaffPayment
from app.domain.suspense import SuspenseAllocation, SuspenseItem, SuspenseNote
from app.domain.users import User, UserFundGroup, UserRole
from app.domain.vat import VatCode, VatRate

ALL_MODELS = [
    AuditEvent,
    CouncilSettings,
    Feedback,
    OutboxMessage,
    VatCode,
    VatRate,
    Fund,
    FundGroup,
    FundGroupFund,
    MethodOfPayment,
    Office,
    User,
    UserRole,
    UserFundGroup,
    ReceiptNumber,
    LedgerEntry,
    CheckDigitConfig,
    ReferenceRule,
    ReferenceFormat,
    AccountHolder,
    ApiKey,
    Payment,
    PaymentItem,
    PaymentEvent,
    WebhookMessage,
    Correction,
    StaffPayment,
    SuspenseItem,
    SuspenseNote,
    SuspenseAllocation,
    Refund,
    ImportTemplate,
    ImportRule,
    ImportBatch,
    ImportProblem,
    ExportTemplate,
    ExportBatch,
    ExportedEntry,
    ExportFileChunk,
]
