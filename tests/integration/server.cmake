# In-process server tests (several event loops, foreign-thread send/broadcast,
# graceful stop). Label mt: the ThreadSanitizer stage runs these.
add_executable(conduit_server_inprocess_tests ${CMAKE_CURRENT_LIST_DIR}/server_inprocess_test.cpp)
target_link_libraries(conduit_server_inprocess_tests PRIVATE conduit GTest::gtest GTest::gtest_main)
target_compile_options(conduit_server_inprocess_tests PRIVATE ${CONDUIT_WARNINGS})
gtest_discover_tests(conduit_server_inprocess_tests DISCOVERY_MODE PRE_TEST
  TEST_PREFIX "server."
  PROPERTIES LABELS "integration;mt" TIMEOUT 120)
