# In-process server tests (several event loops, foreign-thread send/broadcast,
# graceful stop). Label mt: the ThreadSanitizer stage runs these. One ctest
# entry for the binary: gtest_discover_tests cannot attach a two-label list.
add_executable(conduit_server_inprocess_tests ${CMAKE_CURRENT_LIST_DIR}/server_inprocess_test.cpp)
target_link_libraries(conduit_server_inprocess_tests PRIVATE conduit GTest::gtest GTest::gtest_main)
target_compile_options(conduit_server_inprocess_tests PRIVATE ${CONDUIT_WARNINGS})
add_test(NAME server.inprocess COMMAND conduit_server_inprocess_tests)
set_tests_properties(server.inprocess PROPERTIES LABELS "integration;mt" TIMEOUT 180)
# The same binary on the io_uring engine (label uring, see echo.cmake).
add_test(NAME uring.server.inprocess COMMAND conduit_server_inprocess_tests)
set_tests_properties(uring.server.inprocess PROPERTIES LABELS "integration;uring" TIMEOUT 180
  ENVIRONMENT "CONDUIT_IO=io_uring")
