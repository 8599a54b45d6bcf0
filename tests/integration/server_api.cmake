# The server's extension API in process: send status (also from other
# threads), HTTP routes, end-of-batch hooks, posts onto loops, groups.
# Label mt: the ThreadSanitizer stage runs it.
add_executable(conduit_server_api_tests ${CMAKE_CURRENT_LIST_DIR}/server_api_test.cpp)
target_link_libraries(conduit_server_api_tests PRIVATE conduit GTest::gtest GTest::gtest_main)
target_compile_options(conduit_server_api_tests PRIVATE ${CONDUIT_WARNINGS})
add_test(NAME server.api COMMAND conduit_server_api_tests)
set_tests_properties(server.api PROPERTIES LABELS "integration;mt" TIMEOUT 180)
