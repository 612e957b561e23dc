<?php
class PSS_Shortcodes {
	private $types = array( 'list', 'grid' );

	public function register() {
		add_shortcode( 'pss', array( $this, 'render' ) );
	}

	public function render( $atts ) {
		$atts = shortcode_atts( array( 'type' => 'list', 'count' => 5 ), $atts, 'pss' );
		$type = in_array( $atts['type'], $this->types, true ) ? $atts['type'] : 'list';
		return call_user_func( array( $this, 'render_' . $type ), absint( $atts['count'] ) );
	}

	private function render_list( $count ) {
		$posts = get_posts( array( 'numberposts' => $count ) );
		$html  = '<ul>';
		foreach ( $posts as $p ) {
			$html .= '<li>' . esc_html( $p->post_title ) . '</li>';
		}
		return $html . '</ul>';
	}

	private function render_grid( $count ) {
		return '<div class="pss-grid">' . do_shortcode( '[gallery columns="3"]' ) . '</div>';
	}
}
