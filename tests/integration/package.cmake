# The installed package as a user's project sees it: cmake --install to a
# temporary prefix, examples/ built as a separate project with
# find_package(conduit), one example linked with pkg-config alone, and the
# results run. Not under sanitizers: the installed libraries would need the
# sanitizer runtime that a user's plain build does not link.
if(TARGET conduit_cli AND NOT CONDUIT_SANITIZE)
  add_test(NAME package.install_and_use
    COMMAND ${CONDUIT_PYTHON} ${CONDUIT_TESTS_DIR}/package/package_test.py
            ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} ${CMAKE_CXX_COMPILER})
  set_tests_properties(package.install_and_use PROPERTIES LABELS "package" TIMEOUT 1800)
endif()
