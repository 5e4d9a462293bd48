# Unit tests of single modules (included from tests/CMakeLists.txt).
perch_test(test_procfs test_procfs.c)
perch_test(test_maps test_maps.c)
