# The example programs under examples/, run as a user would and driven by
# independent peers (Python websockets, plain HTTP).
if(TARGET example_topics_server)
  add_test(NAME examples.topics_server
    COMMAND ${CONDUIT_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/examples/test_topics_server.py
            --example $<TARGET_FILE:example_topics_server>)
  set_tests_properties(examples.topics_server PROPERTIES LABELS "integration;interop" TIMEOUT 60
    ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
endif()
