# Version information for the library and the binaries.
#
# <conduit/version.hpp> (installed) carries the CMake project version. The git
# commit is only for the binaries' --version: it is written at build time, not
# configure time, so it stays right after new commits without a re-configure;
# the header is rewritten only when the commit changes, so nothing rebuilds
# needlessly.
set(CONDUIT_GENERATED_DIR ${PROJECT_BINARY_DIR}/generated)
configure_file(${CMAKE_CURRENT_LIST_DIR}/version.hpp.in ${CONDUIT_GENERATED_DIR}/include/conduit/version.hpp @ONLY)

add_custom_target(conduit_build_commit
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
          -DOUTPUT=${CONDUIT_GENERATED_DIR}/apps/conduit_build_commit.hpp
          -P ${CMAKE_CURRENT_LIST_DIR}/ConduitBuildCommit.cmake
  BYPRODUCTS ${CONDUIT_GENERATED_DIR}/apps/conduit_build_commit.hpp
  COMMENT "Recording the git commit for --version"
  VERBATIM)

# conduit_version_info(TARGET): TARGET may include "conduit_build_commit.hpp"
# (CONDUIT_GIT_COMMIT) and <conduit/version.hpp>.
function(conduit_version_info target)
  add_dependencies(${target} conduit_build_commit)
  target_include_directories(${target} PRIVATE ${CONDUIT_GENERATED_DIR}/apps ${CONDUIT_GENERATED_DIR}/include)
endfunction()
