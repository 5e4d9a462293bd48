perch_test(test_engine test_engine.c spawn.c)
target_compile_definitions(test_engine PRIVATE PERCH_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
