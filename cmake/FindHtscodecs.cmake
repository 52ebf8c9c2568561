# Debian's libhtscodecs-dev ships no pkg-config file or CMake package: find it by hand.
find_path(HTSCODECS_INCLUDE_DIR htscodecs/rANS_static4x16.h)
find_library(HTSCODECS_LIBRARY NAMES htscodecs)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Htscodecs REQUIRED_VARS HTSCODECS_LIBRARY HTSCODECS_INCLUDE_DIR)
if(Htscodecs_FOUND AND NOT TARGET Htscodecs::htscodecs)
  add_library(Htscodecs::htscodecs UNKNOWN IMPORTED)
  set_target_properties(Htscodecs::htscodecs PROPERTIES
    IMPORTED_LOCATION "${HTSCODECS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${HTSCODECS_INCLUDE_DIR}")
endif()
