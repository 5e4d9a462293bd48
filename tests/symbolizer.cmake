# The symbolizer test symbolizes its own binary (included from
# tests/CMakeLists.txt).  The fixture is built -O2 -g whatever the build
# type, so its inlined frames and line table are what the test expects.
perch_test(test_symbolizer test_symbolizer.c symbolizer_fixture.c)
set_source_files_properties(symbolizer_fixture.c PROPERTIES COMPILE_OPTIONS "-O2;-g")
target_compile_definitions(test_symbolizer PRIVATE PERCH_OBJCOPY="${CMAKE_OBJCOPY}")
