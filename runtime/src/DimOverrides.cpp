//===- DimOverrides.cpp - The -D NAME=INTEGER dimension overrides ---------===//
//
// Parses "NAME=INTEGER" items into a name-ordered map and renders the canonical "H=4,I=3" form.
// A value must be a positive decimal integer that fits int64; a name may repeat with its value.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/DimOverrides.h"

#include <algorithm>
#include <charconv>
#include <system_error>

using namespace dopa;

DimParse dopa::parseDimOverrides(const std::vector<std::string> &items) {
  DimParse out;
  for (const std::string &item : items) {
    size_t eq = item.find('=');
    std::string name = item.substr(0, eq);
    const char *first = eq == std::string::npos ? nullptr : item.data() + eq + 1;
    const char *last = item.data() + item.size();
    int64_t value = 0;
    std::from_chars_result parsed{};
    if (first)
      parsed = std::from_chars(first, last, value);
    if (name.empty() || !first || first == last ||
        (parsed.ec != std::errc() && parsed.ec != std::errc::result_out_of_range) ||
        parsed.ptr != last) {
      out.error = "-D expects NAME=INTEGER, got '" + item + "'";
      return out;
    }
    if (parsed.ec == std::errc::result_out_of_range || value <= 0 || value > kMaxDimension) {
      out.error = "-D " + item + ": a dimension must be an integer from 1 to " +
                  std::to_string(kMaxDimension);
      return out;
    }
    auto [it, inserted] = out.dims.emplace(name, value);
    if (!inserted && it->second != value) {
      out.error = "-D " + name + " given twice (" + std::to_string(it->second) + " and " +
                  std::to_string(value) + ")";
      return out;
    }
  }
  return out;
}

DimParse dopa::parseCanonicalDims(const std::string &text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = std::min(text.find(',', start), text.size());
    items.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return parseDimOverrides(items);
}

std::string dopa::canonicalDims(const DimMap &dims) {
  std::vector<std::string> items;
  for (const auto &[name, value] : dims)
    items.push_back(name + "=" + std::to_string(value));
  std::sort(items.begin(), items.end());
  std::string out;
  for (const std::string &item : items)
    out += (out.empty() ? "" : ",") + item;
  return out;
}
