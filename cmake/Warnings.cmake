# Build policy as INTERFACE targets: every dcq target links dcq_options.
add_library(dcq_options INTERFACE)
target_compile_options(dcq_options INTERFACE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
  -Wno-unused-parameter
  # GCC 12 reports false positives on std::vector::insert (GCC bug 107852).
  $<$<CXX_COMPILER_ID:GNU>:-Wno-stringop-overflow> $<$<BOOL:${DCQ_WERROR}>:-Werror>)
# Plain x86-64 baseline: faster paths are chosen at run time (src/kernels), never by -march.
if(DCQ_SANITIZE)
  target_compile_options(dcq_options INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=undefined)
  target_link_options(dcq_options INTERFACE -fsanitize=address,undefined)
endif()

# Fuzzing (clang): instrument every library for coverage so libFuzzer sees inside the parsers.
if(DCQ_FUZZ)
  target_compile_options(dcq_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  target_link_options(dcq_options INTERFACE -fsanitize=address,undefined)
endif()

# dcq_add_library(<folder> DEPS ...): one static library per src/ folder, linked only downward.
# Sources are globbed so a new file needs no CMake edit; files ending in _avx2.cpp / _avx512.cpp
# get that ISA's flags and nothing else does.
function(dcq_add_library folder)
  cmake_parse_arguments(ARG "" "" "DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS "${CMAKE_CURRENT_SOURCE_DIR}/*.cpp")
  if(NOT srcs)
    set(srcs "${PROJECT_SOURCE_DIR}/src/common/empty.cpp")
  endif()
  add_library(dcq_${folder} STATIC ${srcs})
  target_include_directories(dcq_${folder} PUBLIC "${PROJECT_SOURCE_DIR}/include"
    PRIVATE "${PROJECT_SOURCE_DIR}/src")
  target_link_libraries(dcq_${folder} PUBLIC ${ARG_DEPS} PRIVATE dcq_options)
  foreach(src IN LISTS srcs)
    if(src MATCHES "_avx2\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
    elseif(src MATCHES "_avx512\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
        "-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx512vnni;-mavx2;-mfma;-mf16c")
    endif()
  endforeach()
endfunction()
