"""``appliance upgrade ARCHIVE``: a host upgrades itself, offline, from a signed release.

The steps (:mod:`.run`): verify the archive against the pinned release key; unpack it and
build its virtual environment beside the running one (:mod:`.install`, :mod:`.layout`);
stop the services; back up what the old release wrote (:mod:`.data`); migrate; point
``venv`` at the new release; start; health-check; and, when any step after the stop fails,
put the old release and its data back by itself. A journal (:mod:`.journal`) records each
step, so an upgrade killed half-way is rolled back by ``appliance upgrade --recover``.
"""
