#include "common/clock.h"

namespace lm {

RealClock& RealClock::Get() {
  static RealClock clock;
  return clock;
}

}  // namespace lm
