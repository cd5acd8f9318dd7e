-: web/web_internal.h core/embed.h core/buf.h core/err.h \
 executor/executor.h catalog/catalog.h core/config.h engine/engine.h \
 web/web.h builder/builder.h
core/embed.h:
core/buf.h:
core/err.h:
executor/executor.h:
catalog/catalog.h:
core/config.h:
engine/engine.h:
web/web.h:
builder/builder.h:
