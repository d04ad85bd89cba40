//===- Bf16.h - bfloat16 storage of traces (dopac --trace-precision=bf16) -===//
//
// With `dopac --trace-precision=bf16`, the float build of a network keeps its matrix-shaped states
// (the Hebbian traces) in bfloat16: the top 16 bits of a float, so 8 bits of mantissa. Arithmetic
// stays float; the step rounds each trace's next value to the nearest bfloat16 (ties away from
// zero, `roundBf16`, the IR's round_bf16) and stores its 16 bits; a load widens them back exactly.
// The double build keeps every state in double and round_bf16 is the identity there, so the
// gradient checks (finite differences, the generic executor) still run on exact arithmetic. The
// gradient of round_bf16 is taken as the identity (straight-through).
//
// Storage: a bf16 state keeps its slot of n floats in the state block (so the block's layout, its
// raw copies and its checkpoints do not change) and uses the first n/2 of them, element k in the
// 16-bit half-word k. Code views the slot through `Bf16Bits`, a may_alias type. Generated loops
// reach it through traceView / traceLoad / traceStore, which are overloaded so that the same
// template source is bf16 in float and plain in double.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <bit>
#include <cstdint>

namespace dopa {

/// A bfloat16's bits, allowed to alias the float storage of a state block.
typedef uint16_t __attribute__((may_alias)) Bf16Bits;

/// x rounded to the nearest bfloat16 (ties away from zero), as a float: the same float the 16
/// stored bits widen back to. Two integer operations, so the trace loops stay as fast as in
/// float32 (ties to even takes five, and a NaN check two more: the forward pass of
/// cue_reward/modul went from 13 to 27 us per element-step with both, on AMD EPYC, where 512-bit
/// integer operations are double-pumped). Ties are rare enough (one value in 2^16) that the bias
/// does not matter. Infinities stay, finite values beyond bfloat16's range round to infinity, and
/// the NaNs arithmetic makes (x86's default 0xffc00000, or a NaN operand's payload) stay NaN. Two
/// kinds of NaN bits do not: a payload only in the low 16 bits becomes an infinity, and one with
/// all of bits 15-22 set carries into the sign and becomes a zero; only NaNs made bit by bit (in
/// inputs or parameters) have those, and floatToBf16 keeps every NaN.
inline float roundBf16(float x) {
  return std::bit_cast<float>((std::bit_cast<uint32_t>(x) + 0x8000u) & 0xffff0000u);
}
/// The double build keeps traces exact: round_bf16 is the identity.
inline double roundBf16(double x) { return x; }

/// The 16 bits of roundBf16(x) (every NaN kept a NaN: not a hot path), and back.
inline uint16_t floatToBf16(float x) {
  uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return uint16_t((u | 0x00400000u) >> 16);
  return uint16_t(std::bit_cast<uint32_t>(roundBf16(x)) >> 16);
}
inline float bf16ToFloat(uint16_t bits) { return std::bit_cast<float>(uint32_t(bits) << 16); }

/// What a trace's slot holds: bfloat16 bits in the float build, doubles in the double build.
template <class T> struct TraceStorage {
  using Type = T;
};
template <> struct TraceStorage<float> {
  using Type = Bf16Bits;
};
template <class T> using Trace = typename TraceStorage<T>::Type;

/// A state slot viewed as its trace storage.
inline const Bf16Bits *traceView(const float *slot) {
  return reinterpret_cast<const Bf16Bits *>(slot);
}
inline Bf16Bits *traceView(float *slot) { return reinterpret_cast<Bf16Bits *>(slot); }
inline const double *traceView(const double *slot) { return slot; }
inline double *traceView(double *slot) { return slot; }

/// One trace element read as the arithmetic type, and a value in the form the slot stores. The
/// generated code stores only values that are bfloat16 already (a trace's next value is a
/// round_bf16, or a value it loaded), so traceStore keeps the top 16 bits without rounding again
/// (rounding costs as much as the rest of the element's arithmetic).
inline float traceLoad(uint16_t bits) { return bf16ToFloat(bits); }
inline double traceLoad(double x) { return x; }
inline uint16_t traceStore(float x) { return uint16_t(std::bit_cast<uint32_t>(x) >> 16); }
inline double traceStore(double x) { return x; }

/// Copy `n` values into a trace slot (float: rounded to bfloat16), and out of it.
inline void writeTrace(float *slot, const float *values, int64_t n) {
  Bf16Bits *bits = traceView(slot);
  for (int64_t k = 0; k < n; ++k)
    bits[k] = floatToBf16(values[k]);
}
inline void writeTrace(double *slot, const double *values, int64_t n) {
  for (int64_t k = 0; k < n; ++k)
    slot[k] = values[k];
}
inline void readTrace(const float *slot, float *values, int64_t n) {
  const Bf16Bits *bits = traceView(slot);
  for (int64_t k = 0; k < n; ++k)
    values[k] = bf16ToFloat(bits[k]);
}
inline void readTrace(const double *slot, double *values, int64_t n) {
  for (int64_t k = 0; k < n; ++k)
    values[k] = slot[k];
}

} // namespace dopa
