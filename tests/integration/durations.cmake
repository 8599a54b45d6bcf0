# One duration grammar (conduit::parse_duration) for conduitd's keys and the
# CLI's duration flags: both binaries accept and refuse the same texts.
if(TARGET conduit_cli)
  add_test(NAME config.durations
    COMMAND ${CONDUIT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/durations/test_one_grammar.py
            $<TARGET_FILE:conduitd> $<TARGET_FILE:conduit_cli>)
  set_tests_properties(config.durations PROPERTIES
    LABELS "integration" TIMEOUT 120 ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()
