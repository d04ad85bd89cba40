//===- main.cpp - doctest main for the unit tests -------------------------===//
//
// The doctest runner; every *Test.cpp in this folder registers its cases.
//
//===----------------------------------------------------------------------===//
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
