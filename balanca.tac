"""`twistd -ny balanca.tac`: the same service as `twistd balanca`, configured from the
environment only (BALANCA_HTTP, BALANCA_SCALE, BALANCA_DB, ... as in the README)."""

from twisted.application import service

from balanca.tap import Options, makeService

options = Options()
options.parseOptions([])
application = service.Application("balanca")
makeService(options).setServiceParent(application)
