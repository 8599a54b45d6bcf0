# conduit::Channels and the conduit.v1 service in process (several loops, a
# publishing thread). Label mt: the ThreadSanitizer stage runs it.
add_executable(conduit_channels_tests ${CMAKE_CURRENT_LIST_DIR}/channels_test.cpp)
target_link_libraries(conduit_channels_tests PRIVATE conduit GTest::gtest GTest::gtest_main)
target_compile_options(conduit_channels_tests PRIVATE ${CONDUIT_WARNINGS})
add_test(NAME channels.inprocess COMMAND conduit_channels_tests)
set_tests_properties(channels.inprocess PROPERTIES LABELS "integration;mt" TIMEOUT 180)
